"""A telephony service that cannot start (its FastAGI port is taken) says so and leaves
nothing of itself behind: no PBX link reconnecting, no sweeper, in a process that did not
start."""

from __future__ import annotations

import asyncio
import socket

import pytest
from support.server import running_api

from crm_api.calls.pipeline import start_call_events
from crm_api.calls.telephony import start_telephony
from crm_api.platform.settings import Settings
from telephony.ami.simulator import AmiSimulator

TELEPHONY_TASKS = {"ami-dispatch", "ami-tick", "call-sweeper", "pbx-last-heard"}


async def test_a_taken_agi_port_fails_the_start_and_stops_what_had_started(
    settings: Settings, pbx: AmiSimulator
) -> None:
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    settings.ami_url = pbx.url
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.agi_bind = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(RuntimeError, match="did not start"):
            async with running_api(settings, features=(start_call_events, start_telephony)):
                pytest.fail("the API must not serve without its FastAGI port")
    alive = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
    assert alive.isdisjoint(TELEPHONY_TASKS), alive
    assert pbx.sessions == 0
