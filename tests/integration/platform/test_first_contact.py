"""What a newcomer does first, as the README tells it: probe health, get an API token."""

from __future__ import annotations

import httpx
from support.factories import PASSWORD, Actor
from support.server import RunningApi

from crm_api.accounts.models import Role


async def test_health_answers_json_at_both_addresses_not_the_web_app(api: RunningApi) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        for path in ("/api/v1/health", "/health"):
            r = await http.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-type"].startswith("application/json"), path
            assert r.json() == {"status": "ok"}


async def test_api_client_gets_a_token_by_logging_in_then_asking_for_an_api_token(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER].user
    async with httpx.AsyncClient(base_url=api.base_url + "/api/v1") as http:
        # Without a login first, the token endpoint says so.
        refused = await http.post("/auth/tokens", json={"name": "crm-sync"})
        assert refused.status_code == 401
        login = await http.post(
            "/auth/login", json={"username": manager.username, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        session_token = login.json()["token"]
        http.cookies.clear()  # an API client sends the header, not the browser's cookie
        issued = await http.post(
            "/auth/tokens",
            json={"name": "crm-sync"},
            headers={"Authorization": f"Bearer {session_token}"},
        )
        assert issued.status_code == 201, issued.text
        api_token = issued.json()["token"]
        me = await http.get("/auth/me", headers={"Authorization": f"Bearer {api_token}"})
        assert me.status_code == 200 and me.json()["username"] == manager.username
