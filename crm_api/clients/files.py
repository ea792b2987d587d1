"""Clients to and from CSV and XLSX files.

An import is all-or-nothing: every row is validated first and reported with its line
number and field; only a file without a bad row is written, in one transaction."""

from __future__ import annotations

import contextlib
import csv
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from openpyxl import load_workbook
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.accounts.permissions import may_see_client_of
from crm_api.clients import service as clients_domain
from crm_api.clients.directories.models import ClientGroup, LeadSource, Segment
from crm_api.clients.models import Client, ClientEmail, ClientPhone
from crm_api.clients.types import ClientCreate, ClientFilters, EmailIn, PhoneIn
from crm_api.platform import spreadsheets
from crm_api.platform.boundary import FORBIDDEN_CHARS
from crm_api.platform.errors import AppError

COLUMNS = (
    "name",
    "kind",
    "phones",
    "emails",
    "address",
    "birthday",
    "lead_source",
    "segment",
    "groups",
    "manager",
    "position",
)
LIST_SEPARATOR = ";"


class UnreadableFile(AppError):
    status = 422
    code = "unreadable_file"


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # line number as the user sees it in the file (header is line 1)
    field: str | None
    message: str


# An XLSX is a zip: a few hundred KB can unpack to gigabytes (a million empty rows).
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_PACK_RATIO = 200


def _check_zip(content: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise UnreadableFile(f"not a readable XLSX file: {exc}") from exc
    unpacked = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    if unpacked > MAX_UNPACKED_BYTES or unpacked / packed > MAX_PACK_RATIO:
        raise UnreadableFile(
            f"the XLSX unpacks to {unpacked // (1024 * 1024)} MB"
            f" ({unpacked // packed}× its size): not a plain client list"
        )


def _cells(filename: str, content: bytes) -> Iterator[list[str]]:
    """The file's lines as text cells, one at a time (never the whole sheet at once)."""
    if filename.lower().endswith(".xlsx"):
        _check_zip(content)
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:
            raise UnreadableFile(f"not a readable XLSX file: {exc}") from exc
        sheet = book.active
        if sheet is None:
            raise UnreadableFile("the workbook has no sheet")
        try:
            for row in sheet.iter_rows(values_only=True):
                yield ["" if v is None else str(v) for v in row]
        finally:
            book.close()
        return
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("cp1251")  # Excel in Russia saves CSV in Windows-1251
    dialect = csv.excel
    with contextlib.suppress(csv.Error):
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")  # type: ignore[assignment]
    yield from csv.reader(io.StringIO(text), dialect)


def read_rows(filename: str, content: bytes, max_rows: int) -> list[dict[str, str]]:
    """The file's rows as column key → text (a heading is the key or its Russian name, as
    a Russian user's export writes it); counted while read, and refused at the first row
    past `max_rows`. Control characters are dropped (a cell is a boundary too). Slow on big
    files: run it in a worker thread."""
    lines = _cells(filename, content)
    header_line = next(lines, None)
    if header_line is None:
        raise UnreadableFile("the file is empty")
    header = [spreadsheets.column_key(h) for h in header_line]
    if "name" not in header:
        raise UnreadableFile("the first row must name the columns; 'name' is required")
    rows: list[dict[str, str]] = []
    for line in lines:
        if len(rows) >= max_rows:
            raise UnreadableFile(f"more than {max_rows} rows; at most {max_rows} in one file")
        if not any(cell.strip() for cell in line):
            rows.append({})
            continue
        rows.append(
            {
                header[i]: FORBIDDEN_CHARS.sub("", cell).strip()
                for i, cell in enumerate(line)
                if i < len(header)
            }
        )
    return rows


def _split(value: str) -> list[str]:
    return [
        v.strip() for v in value.replace(",", LIST_SEPARATOR).split(LIST_SEPARATOR) if v.strip()
    ]


@dataclass
class _Lookups:
    sources: dict[str, int]
    segments: dict[str, int]
    groups: dict[str, int]
    managers: dict[str, int]


async def _lookups(session: AsyncSession) -> _Lookups:
    def by_name(rows: Sequence[Any]) -> dict[str, int]:
        return {r.name.casefold(): r.id for r in rows}

    return _Lookups(
        sources=by_name((await session.scalars(select(LeadSource))).all()),
        segments=by_name((await session.scalars(select(Segment))).all()),
        groups=by_name((await session.scalars(select(ClientGroup))).all()),
        managers={u.username: u.id for u in (await session.scalars(select(User))).all()},
    )


def _row_to_create(
    row: dict[str, str], lk: _Lookups
) -> tuple[ClientCreate | None, list[tuple[str | None, str]]]:
    problems: list[tuple[str | None, str]] = []
    data: dict[str, Any] = {"name": row.get("name", ""), "kind": row.get("kind") or "person"}
    data["phones"] = [PhoneIn(number=p) for p in _split(row.get("phones", ""))]
    data["emails"] = [{"email": e} for e in _split(row.get("emails", ""))]
    for key in ("address", "position"):
        if row.get(key):
            data[key] = row[key]
    if row.get("birthday"):
        data["birthday"] = row["birthday"][:10]
    for column, table, target in (
        ("lead_source", lk.sources, "lead_source_id"),
        ("segment", lk.segments, "segment_id"),
    ):
        if row.get(column):
            found = table.get(row[column].casefold())
            if found is None:
                problems.append((column, f"unknown {column.replace('_', ' ')} {row[column]!r}"))
            data[target] = found
    if row.get("groups"):
        ids = []
        for name in _split(row["groups"]):
            gid = lk.groups.get(name.casefold())
            if gid is None:
                problems.append(("groups", f"unknown group {name!r}"))
            else:
                ids.append(gid)
        data["group_ids"] = ids
    if row.get("manager"):
        mid = lk.managers.get(row["manager"].lower())
        if mid is None:
            problems.append(("manager", f"unknown user {row['manager']!r}"))
        data["manager_id"] = mid
    try:
        data["emails"] = [EmailIn.model_validate(e) for e in data["emails"]]
        return ClientCreate.model_validate(data), problems
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            problems.append((loc[0] if loc else None, err["msg"]))
        return None, problems


async def validate_rows(
    session: AsyncSession,
    actor: User,
    rows: list[dict[str, str]],
    region: str,
    progress: Callable[[int], Any] | None = None,
) -> tuple[list[tuple[int, ClientCreate]], list[RowError]]:
    """Every row checked (fields, numbers, duplicates in the file and in the database)."""
    lk = await _lookups(session)
    good: list[tuple[int, ClientCreate]] = []
    errors: list[RowError] = []
    seen_phones: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    for index, row in enumerate(rows):
        line = index + 2
        if not row:
            continue
        create, problems = _row_to_create(row, lk)
        errors.extend(RowError(line, f, m) for f, m in problems)
        if create is not None and not problems:
            try:
                numbers = clients_domain.normalize_phones(create.phones, region)
            except AppError as exc:
                errors.append(RowError(line, "phones", exc.message.split(": ", 1)[-1]))
                numbers = []
            for n in numbers:
                if n.e164 in seen_phones:
                    errors.append(
                        RowError(line, "phones", f"{n.e164} is also on line {seen_phones[n.e164]}")
                    )
                seen_phones.setdefault(n.e164, line)
            for e in create.emails:
                email = str(e.email).lower()
                if email in seen_emails:
                    errors.append(
                        RowError(line, "emails", f"{email} is also on line {seen_emails[email]}")
                    )
                seen_emails.setdefault(email, line)
            if not any(err.row == line for err in errors):
                good.append((line, create))
        if progress is not None and index % 200 == 0:
            await progress(index)
    for field, column, owner, seen in (
        ("phones", ClientPhone.e164, ClientPhone.client_id, seen_phones),
        ("emails", ClientEmail.email, ClientEmail.client_id, seen_emails),
    ):
        for chunk in _chunks(list(seen), 500):
            taken = await session.execute(
                select(column, Client.id, Client.name, Client.manager_id)
                .join(Client, Client.id == owner)
                .where(column.in_(chunk))
            )
            for value, cid, name, manager_id in taken:
                # Which card, only to those who may see it: a file must not probe numbers.
                whose = (
                    f"client #{cid} {name}"
                    if may_see_client_of(actor, manager_id)
                    else "another manager's client"
                )
                errors.append(RowError(seen[value], field, f"{value} already belongs to {whose}"))
    errors.sort(key=lambda e: (e.row, e.field or ""))
    return good, errors


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def export_row(client: Client) -> dict[str, str]:
    return {
        "name": client.name,
        "kind": str(client.kind),
        "phones": LIST_SEPARATOR.join(p.e164 for p in client.phones),
        "emails": LIST_SEPARATOR.join(e.email for e in client.emails),
        "address": client.address or "",
        "birthday": client.birthday.isoformat() if client.birthday else "",
        "lead_source": client.lead_source.name if client.lead_source else "",
        "segment": client.segment.name if client.segment else "",
        "groups": LIST_SEPARATOR.join(g.name for g in client.groups),
        "manager": client.manager.username if client.manager else "",
        "position": client.position or "",
    }


def write_csv(rows: list[dict[str, str]], language: str) -> bytes:
    return spreadsheets.write_csv(COLUMNS, rows, language)


def write_xlsx(rows: list[dict[str, str]]) -> bytes:
    return spreadsheets.write_xlsx("clients", COLUMNS, ([row[c] for c in COLUMNS] for row in rows))


async def exported(
    session: AsyncSession, user: User, filters: ClientFilters, region: str
) -> list[Client]:
    """The clients `user` sees that match `filters`, with their phones, e-mails and groups."""
    query = clients_domain.filtered(user, filters, region)
    return list(
        (await session.scalars(query.options(*clients_domain.CARD_LOAD).order_by(Client.id))).all()
    )
