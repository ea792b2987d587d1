"""Folders the test servers keep their data in (PostgreSQL's, Redis's), under the system's
temporary folder. A run that is killed runs no cleanup: its folders are removed by the
next run that makes one, once the process that made them is gone."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

OWNER_FILE = ".owner-pid"
UNOWNED_AFTER_S = 24 * 3600  # a folder with no owner file (a run made it before they had one)


def scratch_dir(prefix: str) -> Path:
    """A new folder `<tmp>/<prefix>…`, owned by this process; the folders of that prefix
    left by processes that ended are removed first."""
    sweep(prefix)
    home = Path(tempfile.mkdtemp(prefix=prefix))
    (home / OWNER_FILE).write_text(str(os.getpid()))
    return home


def sweep(prefix: str) -> list[Path]:
    """Removes the folders of `prefix` whose owner has ended; returns them."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        if folder.is_dir() and not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _owner_alive(folder: Path) -> bool:
    try:
        pid = int((folder / OWNER_FILE).read_text())
    except FileNotFoundError:
        # Being made this moment, or made before owner files: kept for a day.
        try:
            return time.time() - folder.stat().st_mtime < UNOWNED_AFTER_S
        except FileNotFoundError:
            return True  # removed meanwhile
    except (ValueError, OSError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True
