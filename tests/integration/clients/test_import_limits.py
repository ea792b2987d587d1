"""An import cannot freeze the server: the upload is size-limited, rows are counted while
read and the file refused past the limit, a zip bomb is refused before it is unpacked,
and control characters in cells are dropped."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator

import httpx
import pytest
from openpyxl import Workbook
from support.factories import Actor
from support.server import RunningApi, running_api

from crm_api.accounts.models import Role
from crm_api.platform.settings import Settings


@pytest.fixture
async def small_api(settings: Settings) -> AsyncIterator[RunningApi]:
    limits = {"import_max_rows": 50, "import_max_bytes": 64 * 1024}
    async with running_api(settings.model_copy(update=limits)) as running:
        yield running


async def _finished(http: httpx.AsyncClient, job_id: int) -> dict:
    for _ in range(600):
        job = (await http.get(f"/imports/{job_id}")).json()
        if job["status"] != "running":
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


def _bomb() -> bytes:
    """A valid XLSX whose sheet holds a million empty rows, a few KB packed."""
    book = Workbook()
    book.active.append(["name"])  # type: ignore[union-attr]
    plain = io.BytesIO()
    book.save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", b"<row/>" * 1_000_000 + b"</sheetData>")
            dst.writestr(item.filename, data)
    return out.getvalue()


async def test_a_zip_bomb_is_refused_before_it_is_unpacked(
    small_api: RunningApi, actors: dict[Role, Actor]
) -> None:
    bomb = await asyncio.to_thread(_bomb)
    assert len(bomb) < small_api.settings.import_max_bytes
    async with small_api.client(actors[Role.ADMIN].token) as http:
        r = await http.post("/clients/import", files={"file": ("big.xlsx", bomb, "x/y")})
        assert r.status_code == 202, r.text
        job = await _finished(http, r.json()["id"])
        assert (await http.get("/health")).status_code == 200
    assert job["status"] == "failed" and "unpacks to" in job["message"], job
    assert job["created"] == 0


async def test_rows_past_the_limit_stop_the_import(
    small_api: RunningApi, actors: dict[Role, Actor]
) -> None:
    body = "name\n" + "".join(f"Клиент {n}\n" for n in range(51))
    async with small_api.client(actors[Role.ADMIN].token) as http:
        r = await http.post("/clients/import", files={"file": ("c.csv", body.encode(), "text/csv")})
        job = await _finished(http, r.json()["id"])
        assert job["status"] == "failed" and "more than 50 rows" in job["message"], job
        assert (await http.get("/clients")).json()["total"] == 0
        fifty = "name\n" + "".join(f"Клиент {n}\n" for n in range(50))
        r = await http.post("/clients/import", files={"file": ("c.csv", fifty.encode(), "t/c")})
        assert (await _finished(http, r.json()["id"]))["status"] == "done"


async def test_an_upload_over_the_size_limit_is_refused(
    small_api: RunningApi, actors: dict[Role, Actor]
) -> None:
    big = b"name\n" + b"x" * (100 * 1024)  # over the file limit, within the body's slack
    async with small_api.client(actors[Role.ADMIN].token) as http:
        r = await http.post("/clients/import", files={"file": ("c.csv", big, "text/csv")})
        assert r.status_code == 422, r.text
        assert "larger than" in r.json()["error"]["message"]
        assert (await http.get("/clients")).json()["total"] == 0


async def test_control_characters_in_cells_are_dropped(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    body = "name,address\nИва\x01нов Иван,ул.\x00 Ленина\n".encode()
    async with api.client(actors[Role.ADMIN].token) as http:
        r = await http.post("/clients/import", files={"file": ("c.csv", body, "text/csv")})
        job = await _finished(http, r.json()["id"])
        assert job["status"] == "done", job
        found = (await http.get("/clients", params={"q": "Иванов"})).json()["items"]
        assert [c["name"] for c in found] == ["Иванов Иван"]
        r = await http.get("/clients/export", params={"format": "xlsx"})
        assert r.status_code == 200
