"""CSV and XLSX files the users download: every export writes through here.

Cells are data, never formulas: a text beginning with = + - @ tab or CR is prefixed with
an apostrophe (OWASP's rule for CSV injection), so a client named `=HYPERLINK(...)` stays
text in Excel and LibreOffice. A control character XLSX cannot hold is dropped."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

CSV_MEDIA = "text/csv; charset=utf-8"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# For the OpenAPI document of a route that answers with a file.
FILE_CONTENT: dict[str, dict[str, Any]] = {
    "text/csv": {"schema": {"type": "string"}},
    XLSX_MEDIA: {"schema": {"type": "string", "format": "binary"}},
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def safe_text(value: str) -> str:
    """The cell as text a spreadsheet will not evaluate."""
    if value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def _safe(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


def write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_safe(row.get(c, "")) for c in columns])
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read Cyrillic right


def write_xlsx(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append(list(columns))
    for row in rows:
        sheet.append([_xlsx_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(ILLEGAL_CHARACTERS_RE.sub("", value))
    return value
