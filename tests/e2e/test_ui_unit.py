"""The web app's own tests (Vitest: components, the socket against a real WebSocket
server, i18n), run from the Python suite so `make test` runs them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.peers import missing

UI = Path(__file__).resolve().parents[2] / "ui"


def test_vitest() -> None:
    npm = shutil.which("npm")
    if npm is None or not (UI / "node_modules").is_dir():
        missing("npm", "the web app's dependencies are not installed (make ui)")
    assert npm is not None
    run = subprocess.run(
        [npm, "test", "--silent", "--", "--reporter=dot"],
        cwd=UI,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
