"""End-to-end: the built web app in a real browser against a live API (see fixtures.py)."""

from e2e.fixtures import (
    app,
    backend,
    browser,
    chromium,
    demo,
    pbx,
    pbx_app,
    smtp,
    ui_dist,
    wired_app,
)

__all__ = [
    "app",
    "backend",
    "browser",
    "chromium",
    "demo",
    "pbx",
    "pbx_app",
    "smtp",
    "ui_dist",
    "wired_app",
]
