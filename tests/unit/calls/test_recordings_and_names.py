"""Where a recording is kept (relative to the recordings root, dated folders included,
nothing outside it) and which caller names may name a card."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_api.calls.consumer import person_name
from crm_api.calls.recordings import relative_path, resolve


@pytest.mark.parametrize(
    ("pbx_path", "kept"),
    [
        ("/var/spool/asterisk/monitor/2026/12/02/1796185295.2.wav", "2026/12/02/1796185295.2.wav"),
        ("/var/spool/asterisk/monitor/1795386673.0.wav", "1795386673.0.wav"),
        ("/srv/rec/q/1795386673.0.wav", "1795386673.0.wav"),
        ("C:\\rec\\2026\\12\\02\\x.wav", "2026/12/02/x.wav"),
        ("/var/spool/asterisk/monitor/../../../etc/passwd", "passwd"),
        ("/", None),
        ("..", None),
    ],
)
def test_recording_path_is_kept_relative_to_the_root(pbx_path: str, kept: str | None) -> None:
    assert relative_path(pbx_path) == kept


def test_nothing_outside_the_recordings_root_is_served(tmp_path: Path) -> None:
    root = tmp_path / "monitor"
    (root / "2026/12/02").mkdir(parents=True)
    assert resolve(root, "2026/12/02/a.wav") == (root / "2026/12/02/a.wav").resolve()
    for name in ("../secret.wav", "2026/../../secret.wav", "/etc/passwd", ".", ""):
        assert resolve(root, name) is None, name
    (root / "link").symlink_to(tmp_path)
    assert resolve(root, "link/secret.wav") is None  # a link out of the root


@pytest.mark.parametrize(
    ("sent", "name"),
    [
        ("Anna Smirnova", "Anna Smirnova"),
        ("ООО Ромашка", "ООО Ромашка"),
        ("  Иван Петров ", "Иван Петров"),
        ("+79265550101", None),
        ("89265550101", None),
        ("anonymous", None),
        ("Anonymous", None),
        ("<unknown>", None),
        ("unknown", None),
        ("Unavailable", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_persons_name_names_a_card(sent: str | None, name: str | None) -> None:
    assert person_name(sent) == name
