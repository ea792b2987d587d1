"""Recordings are heard by staff and by the users who took part in the call (each agent
of a transfer), not by extension: a phone that only rang may not listen, nor whoever has
that extension later."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path, PurePosixPath

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_recording, make_user
from support.server import RunningApi

from crm_api.accounts.models import Role, User
from crm_api.calls.models import Call, CallParticipant
from crm_api.platform.db.migrate import upgrade
from crm_api.platform.db.session import make_engine, make_sessionmaker
from crm_api.platform.settings import Settings
from telephony.ami.simulator import CAPTURES, AmiSimulator, prepare


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


async def test_each_agent_of_a_transferred_call_may_listen_and_nobody_else(
    telephony_api: RunningApi,
    pbx: AmiSimulator,
    actors: dict[Role, Actor],
    team: dict[str, Actor],
    settings: Settings,
) -> None:
    """101 answers and transfers to 103: both talked, both may listen; 102 and the
    operator took no part (403)."""
    api = telephony_api
    events = prepare("redirect")
    pbx_path = next(
        dict(p)["Value"] for p in events if dict(p).get("Variable") == "MIXMONITOR_FILENAME"
    )
    shutil.copy(
        CAPTURES / "incoming-answered.wav", settings.recordings_dir / PurePosixPath(pbx_path).name
    )
    await pbx.emit(events)
    async with asyncio.timeout(30), api.client(actors[Role.SUPERVISOR].token) as http:
        while True:  # the journal lists a call once it has ended
            items = (await http.get("/calls")).json()["items"]
            if items:
                break
            await asyncio.sleep(0.1)
    [call] = items
    assert call["agents"] == ["101", "103"] and call["recording_id"] is not None
    for ext in ("101", "103"):
        assert await _status(api, team[ext].token, call["recording_id"]) == 200, ext
    assert await _status(api, team["102"].token, call["recording_id"]) == 403
    assert await _status(api, actors[Role.OPERATOR].token, call["recording_id"]) == 403


async def test_the_upgrade_gives_each_old_call_its_recorded_user(tmp_path: Path) -> None:
    """Calls from before per-participant rows keep whoever was recorded as taking them
    (not the extensions in `agents`, which may belong to someone else by now)."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await upgrade(engine, "0006_call_result")
        async with make_sessionmaker(engine)() as session:
            taker = await make_user(session, Role.MANAGER, extension="101")
            # Only the columns of that schema (the model's later `pbx` is not there yet).
            values = {"direction": "inbound", "state": "ended"}
            taken = await session.scalar(
                insert(Call)
                .values(**values, agents=["101", "103"], talk_s=4.0, user_id=taker.user.id)
                .returning(Call.id)
            )
            await session.execute(insert(Call).values(**values))  # missed
            await session.commit()
            ids = (taken, taker.user.id)
        await upgrade(engine)
        async with make_sessionmaker(engine)() as session:
            rows = (await session.execute(select(CallParticipant))).scalars().all()
        assert [(r.call_id, r.user_id, r.talk_s) for r in rows] == [(*ids, 4.0)]
    finally:
        await engine.dispose()
