"""An admin edits a user's name, extension, SIP URI and password; the last active admin can be
neither demoted nor deactivated (a stable `last_admin` code), so users stay manageable."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_user
from support.server import RunningApi

from crm_api.accounts.models import Role


async def test_an_admin_edits_name_extension_and_password(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    operator = actors[Role.OPERATOR]
    async with api.client(actors[Role.ADMIN].token) as http:
        url = f"/users/{operator.user.id}"
        r = await http.patch(url, json={"full_name": "Ольга Петрова", "extension": "204"})
        assert r.status_code == 200, r.text
        assert (r.json()["full_name"], r.json()["extension"]) == ("Ольга Петрова", "204")
        # null clears the extension; for a name or a role it changes nothing (never a 500)
        r = await http.patch(url, json={"extension": None, "full_name": None, "role": None})
        assert r.status_code == 200, r.text
        assert r.json()["extension"] is None and r.json()["full_name"] == "Ольга Петрова"
        assert r.json()["role"] == "operator"
        for taken in ({"extension": "101"}, {"extension": "101", "password": "new-pass-0"}):
            r = await http.patch(url, json=taken)  # the manager's extension (and a reset)
            assert (r.status_code, r.json()["error"]["code"]) == (409, "user_exists"), taken
        assert (await http.patch(url, json={"password": "new-pass-1"})).status_code == 200
    async with api.client() as http:
        login = {"username": operator.user.username, "password": "new-pass-1"}
        assert (await http.post("/auth/login", json=login)).status_code == 200


async def test_an_admin_sets_a_valid_sip_uri_on_a_profile(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    url = f"/users/{actors[Role.MANAGER].user.id}"
    async with api.client(actors[Role.ADMIN].token) as http:
        for wrong in ("101", "sip:ivan petrov@pbx", "http://pbx/101", "sip:<101>@pbx", "sip:"):
            r = await http.patch(url, json={"sip_address": wrong})
            assert r.status_code == 422, wrong
        uri = "sip:ivanov@pbx.example.com:5060;transport=tcp"
        r = await http.patch(url, json={"sip_address": uri})
        assert (r.status_code, r.json()["sip_address"]) == (200, uri)
        r = await http.patch(url, json={"sip_address": None})  # null clears it
        assert (r.status_code, r.json()["sip_address"]) == (200, None)
    async with api.client(actors[Role.MANAGER].token) as http:  # not for the user alone
        r = await http.patch(url, json={"sip_address": "sip:101@evil.example"})
        assert r.status_code == 403


async def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    admin = actors[Role.ADMIN]
    me = f"/users/{admin.user.id}"
    async with api.client(admin.token) as http:
        for change in ({"role": "supervisor"}, {"is_active": False}):
            r = await http.patch(me, json=change)
            assert (r.status_code, r.json()["error"]["code"]) == (409, "last_admin"), change
        assert (await http.get("/auth/me")).json()["role"] == "admin"
        assert (await http.patch(me, json={"full_name": "Главный"})).status_code == 200
    async with db() as session:
        second = await make_user(session, Role.ADMIN)
        await session.commit()
    async with api.client(second.token) as http:
        # An inactive admin does not count: deactivate the first, then the second is last.
        assert (await http.patch(me, json={"is_active": False})).status_code == 200
        r = await http.patch(f"/users/{second.user.id}", json={"role": "manager"})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "last_admin")
        # Bringing the first back makes room again.
        assert (await http.patch(me, json={"is_active": True})).status_code == 200
        r = await http.patch(f"/users/{second.user.id}", json={"role": "manager"})
        assert r.status_code == 200, r.text
