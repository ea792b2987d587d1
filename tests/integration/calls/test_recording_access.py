"""Recordings are heard by staff and by the user who took the call, not by extension:
a phone that only rang may not listen, nor whoever has that extension later."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_recording, make_user
from support.server import RunningApi

from crm_api.accounts.models import Role, User


async def _status(api: RunningApi, token: str, rec: int) -> int:
    async with api.client(token) as http:
        return (await http.get(f"/recordings/{rec}")).status_code


async def test_only_the_user_who_took_the_call_and_staff_may_listen(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    manager, operator = actors[Role.MANAGER], actors[Role.OPERATOR]  # extensions 101, 104
    rec, _ = await make_recording(
        db,
        api.settings.recordings_dir,
        user_id=manager.user.id,
        agents=["101"],
        ringing=["101", "104"],
    )
    assert await _status(api, manager.token, rec) == 200
    assert await _status(api, actors[Role.SUPERVISOR].token, rec) == 200
    assert await _status(api, operator.token, rec) == 403  # only rang
    # The manager leaves; a newcomer gets extension 101 and must not hear the old calls.
    async with db() as session:
        await session.execute(update(User).where(User.id == manager.user.id).values(extension=None))
        newcomer = await make_user(session, Role.MANAGER, extension="101")
        await session.commit()
    assert await _status(api, newcomer.token, rec) == 403
