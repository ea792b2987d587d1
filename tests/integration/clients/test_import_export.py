"""Client import (all-or-nothing, every bad row reported, progress) and export."""

from __future__ import annotations

import asyncio
import io

from openpyxl import Workbook, load_workbook
from support.factories import PASSWORD, Actor
from support.server import RunningApi, running_api
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.clients import files as client_files
from crm_api.platform.settings import Settings

GOOD_CSV = (
    "name;phones;emails;segment;groups;manager\n"
    "Васильев Олег;8 916 700-00-01;oleg@example.ru;Опт;Новые;{manager}\n"
    "Морозова Дарья;+7 (916) 700-00-02, +7 495 700-00-02;;;;\n"
    "\n"
    "Smith John;+44 20 7946 0001;john@example.co.uk;;;\n"
)
BAD_CSV = (
    "name;phones;emails;segment\n"
    "Хороший Клиент;8 916 700-00-10;;\n"
    ";8 916 700-00-11;;\n"  # line 3: no name
    "Плохой Номер;8 916;;\n"  # line 4: invalid phone
    "Дубль;8 916 700-00-10;;\n"  # line 5: same number as line 2
    "Неизвестный Сегмент;;x@example.ru;Нет такого\n"  # line 6
    "Занятый;+7 916 700-00-99;;\n"  # line 7: belongs to an existing card
)


async def _wait(http, job_id: int, tries: int = 200) -> dict:
    for _ in range(tries):
        job = (await http.get(f"/imports/{job_id}")).json()
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("import did not finish")


async def _setup(http) -> None:
    await http.post("/directories/segments", json={"name": "Опт"})
    await http.post("/directories/groups", json={"name": "Новые"})


async def test_csv_import_creates_every_row_and_reports_progress(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    admin, manager = actors[Role.ADMIN], actors[Role.MANAGER]
    async with api.client(admin.token) as http:
        await _setup(http)
        async with open_socket(api.ws_url, admin.token) as ws:
            s = Socket(ws)
            await s.next_of("hello")
            body = GOOD_CSV.format(manager=manager.user.username).encode("utf-8")
            r = await http.post(
                "/clients/import", files={"file": ("clients.csv", body, "text/csv")}
            )
            assert r.status_code == 202, r.text
            job = await _wait(http, r.json()["id"])
            progress = await s.next_of("import.progress")
            assert progress["data"]["id"] == job["id"]
        assert job["status"] == "done", job
        assert job["created"] == 3 and job["total"] == 4 and job["errors"] == []
        oleg = (await http.get("/clients/lookup", params={"phone": "89167000001"})).json()
        assert oleg["name"] == "Васильев Олег"
        assert oleg["segment"]["name"] == "Опт" and oleg["groups"][0]["name"] == "Новые"
        assert oleg["manager"]["id"] == manager.user.id
        daria = (await http.get("/clients", params={"q": "Морозова"})).json()["items"][0]
        full = (await http.get(f"/clients/{daria['id']}")).json()
        assert [p["e164"] for p in full["phones"]] == ["+79167000002", "+74957000002"]


async def test_import_with_bad_rows_changes_nothing_and_reports_every_bad_row(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    async with api.client(admin.token) as http:
        await _setup(http)
        await http.post(
            "/clients", json={"name": "Существующий", "phones": [{"number": "+7 916 700-00-99"}]}
        )
        before = (await http.get("/clients")).json()["total"]
        r = await http.post(
            "/clients/import", files={"file": ("bad.csv", BAD_CSV.encode("cp1251"), "text/csv")}
        )
        job = await _wait(http, r.json()["id"])
        assert job["status"] == "failed"
        assert job["created"] == 0
        by_row = {(e["row"], e["field"]) for e in job["errors"]}
        assert {(3, "name"), (4, "phones"), (5, "phones"), (6, "segment"), (7, "phones")} <= by_row
        assert 2 not in {e["row"] for e in job["errors"]}
        assert "nothing imported" in job["message"]
        assert (await http.get("/clients")).json()["total"] == before
        r = await http.post("/clients/import", files={"file": ("x.txt", b"hello", "text/plain")})
        assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "file"
        r = await http.post(
            "/clients/import",
            files={"file": ("x.xlsx", b"not a workbook", "application/octet-stream")},
        )
        job = await _wait(http, r.json()["id"])
        assert job["status"] == "failed" and "XLSX" in job["message"]


async def test_xlsx_export_and_import_round_trip(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    async with api.client(admin.token) as http:
        await http.post(
            "/clients",
            json={
                "name": "Егорова Ирина",
                "phones": [{"number": "8 926 111-00-01"}],
                "emails": [{"email": "irina@example.ru"}],
            },
        )
        r = await http.get("/clients/export", params={"format": "xlsx"})
        assert r.status_code == 200
        sheet = load_workbook(io.BytesIO(r.content)).active
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:4] == ("name", "kind", "phones", "emails")
        assert rows[1][:4] == ("Егорова Ирина", "person", "+79261110001", "irina@example.ru")
        csv_text = (
            await http.get("/clients/export", params={"format": "csv", "q": "Егорова"})
        ).content
        assert "Егорова Ирина".encode() in csv_text
        book = Workbook()
        book.active.append(["name", "phones"])
        book.active.append(["Новый Из Excel", "8 926 111-00-02"])
        buf = io.BytesIO()
        book.save(buf)
        r = await http.post(
            "/clients/import",
            files={"file": ("new.xlsx", buf.getvalue(), "application/octet-stream")},
        )
        job = await _wait(http, r.json()["id"])
        assert job["status"] == "done" and job["created"] == 1


async def test_a_long_import_writes_in_batches_so_a_login_never_waits_for_all_of_it(
    settings: Settings, actors: dict[Role, Actor]
) -> None:
    """On SQLite one long write transaction made every login fail ("database is locked")."""
    admin, manager = actors[Role.ADMIN], actors[Role.MANAGER]
    rows = "".join(f"Клиент {i};+7 916 800-{i // 100:02d}-{i % 100:02d}\n" for i in range(600))
    body = ("name;phones\n" + rows).encode("utf-8")
    batched = settings.model_copy(update={"import_batch_rows": 50})
    async with running_api(batched) as api, api.client(admin.token) as http, api.client() as other:
        r = await http.post("/clients/import", files={"file": ("big.csv", body, "text/csv")})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        seen_partial = False
        for _ in range(3000):
            job = (await http.get(f"/imports/{job_id}")).json()
            if job["status"] == "running" and 0 < job["created"] < 600:
                seen_partial = True
                break
            if job["status"] != "running":
                break
            await asyncio.sleep(0.01)
        assert seen_partial, f"no batch was committed while the import ran: {job}"
        # Mid-import, another user's write (a login stores a session) goes through.
        login = await other.post(
            "/auth/login", json={"username": manager.user.username, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        done = await _wait(http, job_id, tries=3000)
        assert done["status"] == "done" and done["created"] == 600, done
        found = await http.get("/clients", params={"q": "+7 916 800-05-99"})
        assert found.json()["total"] == 1


async def test_csv_export_follows_the_users_language_and_reads_back(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    """Excel in a Russian locale splits a CSV on `;`: a Russian user's export uses it, with
    Russian headings (and the BOM); an English user's keeps `,` and the column keys. Either
    file imports back."""
    admin = actors[Role.ADMIN]  # language: ru
    async with api.client(admin.token) as http:
        await http.post(
            "/clients",
            json={"name": "Кузнецова Анна", "phones": [{"number": "8 926 111-00-05"}]},
        )
        query = {"format": "csv", "q": "Кузнецова"}
        ru = (await http.get("/clients/export", params=query)).content
        assert (await http.patch("/auth/me", json={"language": "en"})).status_code == 200
        en = (await http.get("/clients/export", params=query)).content
    assert ru.startswith(b"\xef\xbb\xbf") and en.startswith(b"\xef\xbb\xbf")
    ru_lines = ru.decode("utf-8-sig").splitlines()
    assert ru_lines[0].startswith("Имя;Тип;Телефоны;Почта;Адрес;")
    assert ru_lines[1].startswith("Кузнецова Анна;person;+79261110005;")
    en_lines = en.decode("utf-8-sig").splitlines()
    assert en_lines[0].startswith("name,kind,phones,emails,address,")
    assert en_lines[1].startswith("Кузнецова Анна,person,+79261110005,")
    for body in (ru, en):
        rows = client_files.read_rows("clients.csv", body, 10)
        assert [(r["name"], r["phones"]) for r in rows] == [("Кузнецова Анна", "+79261110005")]
