"""Where a call's recording is: its path relative to the recordings root.

The PBX names the file in `MIXMONITOR_FILENAME` with its own absolute path. Callcard keeps
what follows the recordings root: the file name, under a dated folder when the PBX writes
one (FreePBX's `YYYY/MM/DD/`), and serves it from CALLCARD_RECORDINGS_DIR only, never
from a path the PBX (or anyone spoofing it) dictates."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_DATED = re.compile(r"\d{4}/\d{2}/\d{2}")


def relative_path(pbx_path: str) -> str | None:
    """`2026/12/02/1796185295.2.wav` for a dated folder, else the file name; None for a
    path that names no file."""
    parts = PurePosixPath(pbx_path.replace("\\", "/")).parts
    if not parts or parts[-1] in (".", "..", "/"):
        return None
    if len(parts) >= 4 and _DATED.fullmatch("/".join(parts[-4:-1])):
        return "/".join(parts[-4:])
    return parts[-1]


def resolve(root: Path, file_name: str) -> Path | None:
    """The file under `root`; None for anything that would lead outside it."""
    base = root.resolve()
    path = (base / file_name).resolve()
    return path if path.is_relative_to(base) and path != base else None
