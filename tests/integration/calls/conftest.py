from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.factories import Actor, make_user
from support.peers import free_port
from support.server import RunningApi, running_api

from crm_api.accounts.models import Role
from crm_api.calls.pipeline import start_call_events
from crm_api.calls.telephony import start_telephony
from crm_api.platform.settings import Settings
from telephony.ami.simulator import AmiSimulator


@pytest.fixture
async def calls_api(settings: Settings) -> AsyncIterator[RunningApi]:
    """Callcard with the call-event pipeline running (PBX events enter through its sink)."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=(start_call_events,)) as running:
        yield running


@pytest.fixture
async def pbx() -> AsyncIterator[AmiSimulator]:
    """The AMI simulator: a PBX replaying real Asterisk captures."""
    async with AmiSimulator() as sim:
        yield sim


@pytest.fixture
async def telephony_api(settings: Settings, pbx: AmiSimulator) -> AsyncIterator[RunningApi]:
    """Callcard with the PBX link (AMI adapter, FastAGI) and the call-event pipeline."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    settings.ami_url = pbx.url
    settings.agi_bind = f"127.0.0.1:{free_port()}"
    async with running_api(settings, features=(start_call_events, start_telephony)) as running:
        await running.app.state.services.links.pbx.wait_connected(10)
        yield running


@pytest.fixture
async def team(db, actors: dict[Role, Actor]) -> dict[str, Actor]:
    """Managers on extensions 101 (from `actors`), 102 and 103, like the captures' phones."""
    async with db() as session:
        m2 = await make_user(session, Role.MANAGER, extension="102")
        m3 = await make_user(session, Role.MANAGER, extension="103")
        await session.commit()
    return {"101": actors[Role.MANAGER], "102": m2, "103": m3}
