"""Sessions that end: a new password ends the others, API tokens expire and can be listed
and revoked, idle sessions end, wrong passwords are throttled, argon2 runs off the event
loop, cookie writes and the WebSocket handshake must come from this site, query tokens
only where a header cannot be sent, and open sockets follow the user's current rights."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import PASSWORD, Actor
from support.server import RunningApi
from support.ws import Socket, open_socket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from crm_api.accounts import service as accounts_service
from crm_api.accounts.models import AuthToken, Role
from crm_api.platform.db.base import utcnow


async def _login(api: RunningApi, username: str, password: str = PASSWORD) -> str:
    async with api.client() as http:
        r = await http.post("/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


async def _me(api: RunningApi, token: str) -> int:
    async with api.client(token) as http:
        return (await http.get("/auth/me")).status_code


async def test_a_new_password_ends_every_other_session_and_token(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    here = await _login(api, manager.user.username)
    elsewhere = await _login(api, manager.user.username)
    async with api.client(here) as http:
        api_token = (await http.post("/auth/tokens", json={"name": "script"})).json()["token"]
        r = await http.post(
            "/auth/password", json={"current_password": "wrong", "new_password": "n3w-password"}
        )
        assert r.status_code == 422
        r = await http.post(
            "/auth/password", json={"current_password": PASSWORD, "new_password": "n3w-password"}
        )
        assert r.status_code == 204, r.text
    assert await _me(api, here) == 200  # the one that changed it goes on
    for ended in (elsewhere, api_token, manager.token):
        assert await _me(api, ended) == 401
    await _login(api, manager.user.username, "n3w-password")


async def test_an_admin_reset_ends_every_session_of_that_user(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    operator = actors[Role.OPERATOR]
    session = await _login(api, operator.user.username)
    async with api.client(actors[Role.ADMIN].token) as http:
        r = await http.patch(f"/users/{operator.user.id}", json={"password": "reset-by-admin"})
        assert r.status_code == 200, r.text
    assert await _me(api, session) == 401 and await _me(api, operator.token) == 401


async def test_api_tokens_expire_and_can_be_listed_and_revoked(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager = actors[Role.MANAGER]
    async with api.client(manager.token) as http:
        issued = (await http.post("/auth/tokens", json={"name": "ci", "days": 5000})).status_code
        assert issued == 422  # a year at most
        r = await http.post("/auth/tokens", json={"name": "ci", "days": 30})
        assert r.status_code == 201 and r.json()["expires_at"] is not None
        ci = r.json()["token"]
        listed = (await http.get("/auth/tokens")).json()["items"]
        assert {t["name"] for t in listed} >= {"ci"}
        assert [t["current"] for t in listed].count(True) == 1
        ci_id = next(t["id"] for t in listed if t["name"] == "ci")
        assert await _me(api, ci) == 200
        assert (await http.delete(f"/auth/tokens/{ci_id}")).status_code == 204
        assert (await http.delete(f"/auth/tokens/{ci_id}")).status_code == 404
    assert await _me(api, ci) == 401
    other = actors[Role.OPERATOR]
    async with api.client(other.token) as http:  # nobody revokes another user's token
        mine = (await http.get("/auth/tokens")).json()["items"][0]["id"]
    async with api.client(manager.token) as http:
        assert (await http.delete(f"/auth/tokens/{mine}")).status_code == 404
    async with db() as session:
        await session.execute(
            update(AuthToken)
            .where(AuthToken.token_hash == accounts_service.digest_of(other.token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    await asyncio.sleep(api.app.state.services.tokens.ttl)  # what the worker remembers
    assert await _me(api, other.token) == 401


async def test_an_idle_session_ends(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    session_token = await _login(api, actors[Role.OPERATOR].user.username)
    idle = timedelta(minutes=api.settings.session_idle_minutes + 1)
    async with db() as session:
        await session.execute(
            update(AuthToken)
            .where(AuthToken.token_hash == accounts_service.digest_of(session_token))
            .values(last_used_at=utcnow() - idle)
        )
        await session.commit()
    assert await _me(api, session_token) == 401


async def test_wrong_passwords_are_throttled_per_account_and_per_address(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    victim = actors[Role.SUPERVISOR].user.username
    async with api.client() as http:
        free = api.settings.login_free_failures
        for _ in range(free + 1):
            r = await http.post("/auth/login", json={"username": victim, "password": "guess"})
            assert r.status_code == 401, r.text
        # Waiting now: even the right password is not checked.
        r = await http.post("/auth/login", json={"username": victim, "password": PASSWORD})
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "login_throttled"
        assert int(r.headers["retry-after"]) >= 1
        # Spraying many accounts from one address is throttled too.
        per_address = api.settings.login_free_failures_per_address
        for n in range(per_address):
            await http.post("/auth/login", json={"username": f"nobody{n}", "password": "x"})
        r = await http.post(
            "/auth/login",
            json={"username": actors[Role.OPERATOR].user.username, "password": PASSWORD},
        )
        assert r.status_code == 429, r.text


async def test_argon2_runs_off_the_event_loop(
    api: RunningApi, actors: dict[Role, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    verify = accounts_service.verify_password

    def recording_verify(password_hash: str, password: str) -> bool:
        seen.append(threading.get_ident())
        return verify(password_hash, password)

    monkeypatch.setattr(accounts_service, "verify_password", recording_verify)
    await _login(api, actors[Role.MANAGER].user.username)
    assert seen and loop_thread not in seen


async def test_cookie_writes_must_come_from_this_site(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    async with api.client() as http:  # a browser: the cookie, no bearer header
        r = await http.post(
            "/auth/login",
            json={"username": actors[Role.MANAGER].user.username, "password": PASSWORD},
        )
        assert r.status_code == 200
        assert (await http.get("/auth/me")).status_code == 200  # reads need no Origin
        for headers in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
            r = await http.post("/clients", json={"name": "CSRF"}, headers=headers)
            assert r.status_code == 403, (headers, r.text)
            assert r.json()["error"]["code"] == "csrf"
        r = await http.post("/clients", json={"name": "Ok"}, headers={"Origin": api.base_url})
        assert r.status_code == 201, r.text
        r = await http.post(
            "/auth/login",
            json={"username": actors[Role.MANAGER].user.username, "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403  # login CSRF
    async with api.client(actors[Role.MANAGER].token) as http:  # API clients send no Origin
        assert (await http.post("/clients", json={"name": "Bearer"})).status_code == 201


async def _refused(url: str, **kwargs: object) -> bool:
    try:
        async with connect(url, **kwargs) as ws:  # type: ignore[arg-type]
            await ws.recv()
    except (InvalidStatus, ConnectionClosed):
        return True
    return False


async def test_the_websocket_handshake_must_come_from_this_site(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    cookie = {"Cookie": f"callcard_session={await _login(api, actors[Role.MANAGER].user.username)}"}
    assert await _refused(api.ws_url, additional_headers=cookie, origin="https://evil.example")
    async with connect(api.ws_url, additional_headers=cookie, origin=api.base_url) as ws:
        assert '"hello"' in str(await ws.recv())


async def test_query_tokens_only_short_lived_and_only_where_no_header_can_go(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    async with api.client() as http:
        r = await http.get("/auth/me", params={"token": manager.token})
        assert r.status_code == 401  # a query token would end up in logs
    assert await _refused(f"{api.ws_url}?token={manager.token}")  # long-lived: not in a query
    async with api.client(manager.token) as http:
        r = await http.post("/auth/link-token")
        assert r.status_code == 201, r.text
        link = r.json()["token"]
        assert r.json()["expires_at"] is not None
        assert (await http.get("/auth/me", params={"token": link})).status_code == 200  # header
    async with connect(f"{api.ws_url}?token={link}") as ws:
        assert '"hello"' in str(await ws.recv())
    async with api.client() as http:
        assert (await http.get("/auth/me", params={"token": link})).status_code == 401


async def test_open_sockets_close_on_logout_and_deactivation_and_follow_demotion(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    supervisor, operator = actors[Role.SUPERVISOR], actors[Role.OPERATOR]
    session_token = await _login(api, operator.user.username)
    admin = actors[Role.ADMIN]
    async with open_socket(api.ws_url, session_token) as ws:
        await Socket(ws).next_of("hello")
        async with api.client(session_token) as http:
            assert (await http.post("/auth/logout")).status_code == 204
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 4401 and ws.close_reason == "session ended"
    async with open_socket(api.ws_url, operator.token) as ws:
        await Socket(ws).next_of("hello")
        async with api.client(admin.token) as http:
            r = await http.patch(f"/users/{operator.user.id}", json={"is_active": False})
            assert r.status_code == 200
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 4401
    hub = api.app.state.services.hub
    async with open_socket(api.ws_url, supervisor.token) as ws:
        sock = Socket(ws, checked=False)  # made-up frames
        await sock.next_of("hello")
        await hub.notify("staff.only", {"n": 1}, roles=["supervisor"])
        assert (await sock.next_of("staff.only"))["data"] == {"n": 1}
        async with api.client(admin.token) as http:
            r = await http.patch(f"/users/{supervisor.user.id}", json={"role": "manager"})
            assert r.status_code == 200
        # Once the demotion is seen, staff frames stop; a frame to the user still comes.
        await hub.notify("staff.only", {"n": 2}, roles=["supervisor"])
        await hub.notify("mine", {}, users=[supervisor.user.id])
        await sock.next_of("mine")
        late = [f for f in sock.frames if f["type"] == "staff.only" and f["data"]["n"] == 2]
        assert not late, sock.frames


async def test_a_card_watch_stops_when_the_client_is_reassigned(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager, supervisor = actors[Role.MANAGER], actors[Role.SUPERVISOR]
    async with api.client(manager.token) as http:
        client = (await http.post("/clients", json={"name": "Смотрим"})).json()
    hub = api.app.state.services.hub
    async with open_socket(api.ws_url, manager.token) as ws:
        sock = Socket(ws, checked=False)  # made-up frames
        await sock.next_of("hello")
        await sock.send("watch", client_id=client["id"])
        await sock.next_of("watching")
        await hub.notify("card.changed", {"n": 1}, client_id=client["id"])
        assert (await sock.next_of("card.changed"))["data"] == {"n": 1}
        async with api.client(supervisor.token) as http:
            r = await http.patch(
                f"/clients/{client['id']}", json={"manager_id": supervisor.user.id}
            )
            assert r.status_code == 200, r.text
        await hub.notify("card.changed", {"n": 2}, client_id=client["id"])
        gone = await sock.next_of("unwatched")
        assert gone["data"] == {"client_id": client["id"]}


async def test_an_open_socket_keeps_its_session_in_use(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    """An operator with only the console open all day is not logged out as idle: the
    socket marks its session used (every `session_touch_seconds`, not per frame)."""
    session_token = await _login(api, actors[Role.OPERATOR].user.username)
    services = api.app.state.services
    services.settings.session_touch_seconds = 0.2
    nearly_idle = utcnow() - timedelta(minutes=api.settings.session_idle_minutes - 1)
    digest = accounts_service.digest_of(session_token)
    async with open_socket(api.ws_url, session_token) as ws:
        await Socket(ws).next_of("hello")
        async with db() as session:
            await session.execute(
                update(AuthToken)
                .where(AuthToken.token_hash == digest)
                .values(last_used_at=nearly_idle)
            )
            await session.commit()
        async with asyncio.timeout(10):
            while True:  # written down again while the socket stays open
                async with db() as session:
                    last = await session.scalar(
                        select(AuthToken.last_used_at).where(AuthToken.token_hash == digest)
                    )
                if last is not None and last > nearly_idle + timedelta(seconds=30):
                    break
                await asyncio.sleep(0.1)
    services.tokens.forget_token(session_token)
    assert await _me(api, session_token) == 200
