"""A bare clone must run: nothing in the code, the tests or the build names a path outside
the repository (the team's hand-over folder `shared/` exists only on the team's machines)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("crm_api", "telephony", "sms_gateway", "tests", "scripts", "ui/src", ".ci", "Makefile")
# Folders the team hands material over in, and the machines' own work folders.
OUTSIDE = re.compile(
    r"""(\.\./+shared\b|["'/]shared["']?\s*/\s*["']?(asterisk-ami|LIBRARIES|ARCHITECTURE|STYLE)"""
    r"""|["']shared["']|(?<![\w.])/work/|/root/|/home/\w+)"""
)


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *CHECKED],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        return None


def escaping_parents(path: Path, source: str) -> list[int]:
    """Lines where `Path(__file__)...parents[n]` (plus `.parent`s) climbs above the root."""
    depth = len(path.relative_to(ROOT).parts) - 1  # folders between the root and the file
    lines = []
    for node in ast.walk(ast.parse(source)):
        climbed, current = 0, node
        while isinstance(current, ast.Attribute | ast.Subscript | ast.Call):
            if isinstance(current, ast.Attribute) and current.attr == "parent":
                climbed += 1
            if (
                isinstance(current, ast.Subscript)
                and isinstance(current.value, ast.Attribute)
                and current.value.attr == "parents"
                and isinstance(current.slice, ast.Constant)
                and isinstance(current.slice.value, int)
            ):
                climbed += current.slice.value + 1
            current = current.value if not isinstance(current, ast.Call) else current.func
        mentions_file = "__file__" in ast.unparse(node) if climbed else False
        if mentions_file and climbed - 1 > depth:
            lines.append(node.lineno)
    return sorted(set(lines))


def test_no_file_names_a_path_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue
        source = text_of(path)
        if source is None:
            continue
        for number, line in enumerate(source.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
        if path.suffix == ".py":
            for number in escaping_parents(path, source):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: climbs above the root")
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)


def test_the_check_sees_an_escape(tmp_path: Path) -> None:
    """The check itself can fail: a test reading the hand-over folder is caught."""
    probe = ROOT / "tests" / "unit" / "probe.py"
    source = 'from pathlib import Path\nW = Path(__file__).resolve().parents[3] / "x.wav"\n'
    assert escaping_parents(probe, source) == [2]
    assert escaping_parents(probe, source.replace("parents[3]", "parents[1]")) == []
    handover = "sha" + "red"  # spelt apart so this file does not match its own check
    assert OUTSIDE.search(f'P = Path("/work/{handover}/asterisk-ami/incoming-answered.wav")')
    assert OUTSIDE.search(f'ROOT.parent / "{handover}" / "asterisk-ami"')
    assert not OUTSIDE.search('CHROMIUM = "/usr/bin/chromium"')
