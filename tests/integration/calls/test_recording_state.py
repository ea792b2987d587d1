"""A recording is playable, not on disk (yet), or without sound: the review says which,
and "with recording" counts only the playable ones."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi

from crm_api.accounts.models import Role
from crm_api.calls.models import Call, Recording
from crm_api.platform.settings import Settings
from telephony.ami.simulator import CAPTURES


async def test_review_names_the_recording_state_and_filters_playable_only(
    api: RunningApi,
    actors: dict[Role, Actor],
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
) -> None:
    folder = settings.recordings_dir
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CAPTURES / "incoming-answered.wav", folder / "playable.wav")
    (folder / "empty.wav").write_bytes(b"RIFF" + bytes(40))  # MixMonitor's 44-byte header
    t0 = datetime.now(UTC) - timedelta(hours=1)
    async with db() as session:
        for i, name in enumerate(("playable.wav", "missing.wav", "empty.wav")):
            call = Call(
                pbx="pbx",
                pbx_call_id=f"rec-{i}",
                direction="inbound",
                state="ended",
                caller="+79161234567",
                started_at=t0 + timedelta(minutes=i),
                disposition="answered",
                talk_s=30,
                ringing=[],
                agents=[],
            )
            session.add(call)
            await session.flush()
            session.add(Recording(call_id=call.id, pbx_path=f"/x/{name}", file_name=name))
        await session.commit()

    async with api.client(actors[Role.SUPERVISOR].token) as http:
        everything = (await http.get("/calls")).json()
        playable = (await http.get("/calls", params={"with_recording": True})).json()
        missing_id = next(c["recording_id"] for c in everything["items"] if c["call_id"] == "rec-1")
        served = await http.get(f"/recordings/{missing_id}")
    states = {c["call_id"]: c["recording"] for c in everything["items"]}
    assert states == {"rec-0": "playable", "rec-1": "missing", "rec-2": "empty"}
    assert [c["call_id"] for c in playable["items"]] == ["rec-0"]
    assert playable["total"] == 1
    assert served.status_code == 404
    assert served.json()["error"]["code"] == "recording_missing"
