"""CSV and XLSX files the users download: every export writes through here.

Cells are data, never formulas: a text beginning with = + - @ tab or CR is prefixed with
an apostrophe (OWASP's rule for CSV injection), so a client named `=HYPERLINK(...)` stays
text in Excel and LibreOffice. A control character XLSX cannot hold is dropped.

A CSV follows its reader's language, as Excel opens it by double click: for Russian, `;`
between cells (Excel in a Russian locale splits on it, `,` being the decimal mark),
decimals with a comma and headings in Russian; the API's column keys and `,` otherwise.
Imports read either kind of heading back (`column_key`)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
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
_DECIMAL = re.compile(r"^-?\d+\.\d+$")

# Every column an export writes, as a Russian user's spreadsheet names it.
HEADINGS_RU: dict[str, str] = {
    "name": "Имя",
    "kind": "Тип",
    "phones": "Телефоны",
    "emails": "Почта",
    "address": "Адрес",
    "birthday": "День рождения",
    "lead_source_id": "Код источника",
    "lead_source": "Источник",
    "segment_id": "Код сегмента",
    "segment": "Сегмент",
    "groups": "Группы",
    "manager_id": "Код менеджера",
    "manager": "Менеджер",
    "position": "Должность",
    "day": "День",
    "bucket": "Период",
    "deals_created": "Создано сделок",
    "deals_created_sum": "Сумма созданных",
    "deals_cancelled": "Отменено сделок",
    "deals_cancelled_sum": "Сумма отменённых",
    "deals_won": "Успешных сделок",
    "sales_sum": "Сумма продаж",
    "plan_month": "План на месяц",
    "calls_in": "Входящие звонки",
    "calls_out": "Исходящие звонки",
    "calls_missed": "Пропущенные звонки",
    "talk_seconds": "Разговор, с",
    "sms_in": "Входящие SMS",
    "sms_out": "Исходящие SMS",
    "emails_in": "Входящие письма",
    "emails_out": "Исходящие письма",
    "new_clients": "Новые клиенты",
    "deals": "Сделки",
    "deals_sum": "Сумма сделок",
    "new_deals": "Новые сделки",
    "new_sum": "Сумма новых",
    "won": "Успешно",
    "won_sum": "Сумма успешных",
    "lost": "Не реализовано",
    "lost_sum": "Сумма нереализованных",
    "plan": "План",
    "plan_completion_pct": "Выполнение плана, %",
    "stage_id": "Код этапа",
    "stage": "Этап",
    "count": "Количество",
    "sum": "Сумма",
    "reached": "Дошли до этапа",
    "conversion_pct": "Конверсия, %",
    "avg_seconds_in_stage": "Среднее время на этапе, с",
}
_KEYS = {heading.lower(): key for key, heading in HEADINGS_RU.items()}


def column_key(heading: str) -> str:
    """The column key a file's heading names (either the key or its Russian heading)."""
    name = heading.strip().lower()
    return _KEYS.get(name, name)


def safe_text(value: str) -> str:
    """The cell as text a spreadsheet will not evaluate."""
    if value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def _safe(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


def write_csv(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], language: str = "en"
) -> bytes:
    """The rows as CSV for a reader of `language` (see the module's docstring)."""
    out = io.StringIO()
    if language == "ru":
        writer = csv.writer(out, delimiter=";")
        writer.writerow([HEADINGS_RU.get(c, c) for c in columns])
        for row in rows:
            writer.writerow([_decimal_comma(_safe(row.get(c, ""))) for c in columns])
    else:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_safe(row.get(c, "")) for c in columns])
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read Cyrillic right


def _decimal_comma(value: Any) -> Any:
    if isinstance(value, float | Decimal):
        return str(value).replace(".", ",")
    if isinstance(value, str) and _DECIMAL.match(value):
        return value.replace(".", ",")
    return value


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
