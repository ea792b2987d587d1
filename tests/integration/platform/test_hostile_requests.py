"""Requests an attacker or a fuzzer sends: each gets a clear 4xx, never a 500, and the
server does not read more than the route needs. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import PASSWORD, Actor, make_recording
from support.server import RunningApi

from crm_api.accounts.models import Role

API = "/api/v1"


async def _raw(api: RunningApi, request: bytes) -> bytes:
    """Sends `request` as is and reads the whole answer (the server closes after it)."""
    host, port = api.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await reader.read(65536)
    finally:
        writer.close()


async def test_nul_byte_at_login_is_422_not_500(api: RunningApi, actors: dict[Role, Actor]) -> None:
    user = actors[Role.OPERATOR].user
    async with api.client() as http:
        for body in (
            {"username": "adm\u0000in", "password": "x"},
            {"username": user.username, "password": "pass\u0000word"},
        ):
            r = await http.post("/auth/login", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "validation_error"
        # The ordinary login still works.
        r = await http.post("/auth/login", json={"username": user.username, "password": PASSWORD})
        assert r.status_code == 200


async def test_control_characters_are_refused_in_bodies_queries_and_paths(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    async with api.client(actors[Role.MANAGER].token) as http:
        r = await http.post("/clients", json={"name": "Ива\u0001нов", "phones": []})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["fields"][0]["field"] == "name"
        r = await http.post("/clients", json={"name": "Ok", "emails": [{"email": "a\u0000@x.ru"}]})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["fields"][0]["field"] == "emails.0.email"
        r = await http.get("/clients", params={"q": "\x00"})
        assert r.status_code == 422, r.text
        r = await http.get("/clients/lookup", params={"phone": "+7916\x00"})
        assert r.status_code == 422, r.text
        r = await http.get("/clients/%00")
        assert r.status_code == 422, r.text
        # An escaped backslash before "u0001" is ordinary text; lines and tabs stay allowed.
        r = await http.post(
            "/clients",
            content='{"name": "C:\\\\u0001 dir", "address": "line 1\\nline 2\\tend"}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "C:\\u0001 dir"


async def test_a_50_mb_login_body_is_refused_before_it_is_sent(api: RunningApi) -> None:
    # Only the headers go out: the answer can only come from the declared length.
    answer = await _raw(
        api,
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 52428800\r\n\r\n{",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer


async def test_a_chunked_body_is_cut_off_at_the_limit(api: RunningApi) -> None:
    chunk = b"x" * 8192
    request = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(chunk), chunk)
    )
    answer = await _raw(api, request)  # no terminating chunk: the server stops reading
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_405_names_the_allowed_methods(api: RunningApi, actors: dict[Role, Actor]) -> None:
    async with api.client(actors[Role.ADMIN].token) as http:
        r = await http.put("/auth/login", json={})
        assert r.status_code == 405
        assert r.headers["allow"] == "POST"
        assert r.json()["error"]["code"] == "method_not_allowed"


async def test_recording_ignores_a_malformed_range_and_answers_head(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    rec, audio = await make_recording(
        db, api.settings.recordings_dir, user_id=actors[Role.SUPERVISOR].user.id
    )
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        for bad in ("bytes=9-3", "pages=1-2", "bytes", "bytes=--"):
            r = await http.get(f"/recordings/{rec}", headers={"Range": bad})
            assert r.status_code == 200, (bad, r.status_code, r.text)  # RFC 9110 §14.2
            assert r.content == audio
        r = await http.get(f"/recordings/{rec}", headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == audio[100:200]
        r = await http.head(f"/recordings/{rec}")
        assert r.status_code == 200, r.text
        assert r.headers["content-length"] == str(len(audio)) and r.content == b""


async def test_ids_beyond_the_database_range_are_422_not_500(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    async with api.client(actors[Role.ADMIN].token) as http:
        for big in (2**31, 2**63, 2**70, -(2**63) - 1):
            for request in (
                http.get(f"/clients/{big}"),
                http.get(f"/deals/{big}/card"),
                http.get("/deals", params={"manager_id": big}),
                http.get(
                    "/schedules/calendar",
                    params={"start": "2026-01-01", "end": "2026-01-02", "user_id": big},
                ),
                http.post("/deals", json={"client_id": big, "title": "x"}),
                http.post("/clients", json={"name": "x", "group_ids": [big]}),
            ):
                r = await request
                assert r.status_code in (404, 422), (big, r.request.url, r.status_code, r.text)


async def test_years_1_and_9999_and_a_numeric_date_are_refused(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    async with api.client(actors[Role.ADMIN].token) as http:
        client = (await http.post("/clients", json={"name": "Даты"})).json()
        deal = (await http.post("/deals", json={"client_id": client["id"], "title": "x"})).json()
        for start, end in (("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31")):
            for path in ("/schedules/calendar", "/reports/managers-sales", "/reports/funnel"):
                r = await http.get(path, params={"start": start, "end": end})
                assert r.status_code == 422, (path, start, r.status_code, r.text)
        for bad in (0, 1700000000, "9999-12-31"):
            r = await http.patch(f"/deals/{deal['id']}", json={"expected_close": bad})
            assert r.status_code == 422, (bad, r.text)
        r = await http.patch(f"/deals/{deal['id']}", json={"expected_close": "2027-03-01"})
        assert r.status_code == 200 and r.json()["expected_close"] == "2027-03-01"


async def test_openapi_declares_errors_files_and_wall_times(api: RunningApi) -> None:
    async with api.client() as http:
        doc = (await http.get("/openapi.json")).json()
    paths = doc["paths"]
    card = paths["/api/v1/clients/{client_id}"]["get"]["responses"]
    for status in ("401", "403", "404", "422"):
        assert card[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    assert "409" in paths["/api/v1/clients"]["post"]["responses"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    export = paths["/api/v1/clients/export"]["get"]["responses"]["200"]["content"]
    assert "text/csv" in export and "application/json" not in export
    report = paths["/api/v1/reports/funnel"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv"} <= set(report)
    starts = doc["components"]["schemas"]["ShiftPublic"]["properties"]["starts"]
    assert "format" not in starts and starts["type"] == "string"
