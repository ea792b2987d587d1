"""End-to-end: the built web app in a real browser against a live API (see fixtures.py)."""

from e2e.fixtures import app, backend, browser, chromium, demo, pbx, pbx_app, ui_dist

__all__ = ["app", "backend", "browser", "chromium", "demo", "pbx", "pbx_app", "ui_dist"]
