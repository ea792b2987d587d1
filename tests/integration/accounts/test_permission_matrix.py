"""Every API route × every role, generated from the route table, so a new route cannot
be left out: no login → 401; a role without the route's permission → 403; a role with
it → anything but 401/403."""

from __future__ import annotations

import re

import httpx
import pytest
from support.factories import Actor
from support.server import RunningApi

from crm_api.accounts.models import Role
from crm_api.accounts.permissions import GRANTS
from crm_api.accounts.route_table import PUBLIC_ROUTES, route_table
from crm_api.app import create_app
from crm_api.platform.settings import Settings

ROUTES = route_table(create_app(Settings(_env_file=None)))  # type: ignore[call-arg]
PATH_VALUES = {"kind": "groups"}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "999999"), path)


def test_every_route_is_public_on_purpose_or_carries_a_permission() -> None:
    assert len(ROUTES) > 20
    for route in ROUTES:
        if (route.method, route.path) in PUBLIC_ROUTES:
            assert route.permission is None, route
        else:
            assert route.permission is not None, f"{route.method} {route.path} has no permission"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_permission_matrix(api: RunningApi, actors: dict[Role, Actor]) -> None:
    checked = 0
    # One client, one kept-alive connection for every request: each carries its own
    # credentials, and no cookie a response sets may log the next request in.
    async with api.client() as http:

        async def ask(method: str, url: str, token: str | None) -> httpx.Response:
            http.cookies.clear()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await http.request(method, api.base_url + url, json={}, headers=headers)

        # Logging out revokes the token the other requests use: it goes last.
        for route in sorted(ROUTES, key=lambda r: r.path.endswith("/auth/logout")):
            if route.permission is None:
                continue
            url = _concrete(route.path)
            r = await ask(route.method, url, None)
            assert r.status_code == 401, (route, r.status_code, r.text)
            for role, actor in actors.items():
                r = await ask(route.method, url, actor.token)
                if role in GRANTS[route.permission]:
                    assert r.status_code not in (401, 403), (role, route, r.text)
                else:
                    assert r.status_code == 403, (role, route, r.status_code, r.text)
                    assert r.json()["error"]["code"] == "forbidden"
                checked += 1
    assert checked == 4 * sum(1 for r in ROUTES if r.permission is not None)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_websocket_requires_login(api: RunningApi, actors: dict[Role, Actor]) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    # Closed with a code a browser can read (a refused handshake tells it nothing): its tab
    # goes to the sign-in page instead of reconnecting for ever.
    for url in (api.ws_url, api.ws_url + "?token=forged"):
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4401, "log in first")
    for actor in actors.values():
        async with connect(
            api.ws_url, additional_headers={"Authorization": f"Bearer {actor.token}"}
        ) as ws:
            import json

            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["data"]["user_id"] == actor.user.id
