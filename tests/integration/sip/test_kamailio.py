"""The scale-out shape: Kamailio from deploy/kamailio/ in front of two bridge workers.
SIPp is the trunk (sending calls to Kamailio and receiving click-to-call legs from it) and
the managers' phones, which register at Kamailio; the workers dial them by extension."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.kamailio import Kamailio, running_kamailio
from support.peers import free_port
from support.sip_bridge import Bridge, StartBridge, wav_stats
from support.sipp import Sipp, start_sipp

from telephony import events as ev
from telephony.pbx import OriginateRequest

pytestmark = pytest.mark.sipp


@dataclass
class Site:
    bridge: Bridge
    kamailio: Kamailio
    trunk: Sipp  # where Kamailio sends the workers' calls to clients


@pytest.fixture
async def site(start_bridge: StartBridge, tmp_path: Path) -> AsyncIterator[Site]:
    """Two workers (4 calls) behind Kamailio; extensions are dialled at Kamailio."""
    kamailio_port = free_port()
    at_kamailio = f"sip:{{user}}@127.0.0.1:{kamailio_port}"
    trunk = await start_sipp("phone_hangs_up.xml", tmp_path, pause_ms=2000)
    await trunk.listening()
    bridge = await start_bridge(
        ["101"],
        workers=2,
        phone_uri=at_kamailio,
        trunk_uri=at_kamailio,
        restart_backoff_s=30.0,  # a killed worker stays down for the test
    )
    async with AsyncExitStack() as stack:
        kamailio = await stack.enter_async_context(
            running_kamailio(
                tmp_path,
                [bridge.address(0), bridge.address(1)],
                trunk=f"127.0.0.1:{trunk.port}",
                port=kamailio_port,
            )
        )
        yield Site(bridge, kamailio, trunk)
    await trunk.kill()


async def registered_phone(site: Site, tmp_path: Path, scenario: str, **options) -> Sipp:
    """A SIPp phone whose contact is registered at Kamailio as extension 101."""
    phone = await start_sipp(scenario, tmp_path, **options)
    await phone.listening()
    register = await start_sipp(
        "register.xml",
        tmp_path,
        target=site.kamailio.address,
        service="101",
        keys={"contact_port": str(phone.port)},
    )
    assert await register.wait() == 0, register.log()
    return phone


async def test_trunk_calls_spread_over_the_workers_and_ring_the_registered_phone(
    site: Site, tmp_path: Path
) -> None:
    phone = await registered_phone(
        site, tmp_path, "phone.xml", pause_ms=500, rtp_echo=True, calls=2
    )
    caller = await start_sipp(
        "caller.xml", tmp_path, target=site.kamailio.address, pause_ms=2500, calls=2, rate=10
    )
    assert await caller.wait() == 0, caller.log()
    assert await phone.wait() == 0, phone.log()
    bridge = site.bridge
    ends = await bridge.ended(2)
    assert [e.disposition for e in ends] == [ev.Disposition.ANSWERED] * 2
    assert [w.taken for w in bridge.pool.status.workers] == [1, 1]  # least loaded first
    for end in ends:
        seconds, rms = wav_stats(bridge.recordings / f"{end.call_id}.wav")
        assert abs(seconds - end.talk_s) < 0.5 and rms > 500


async def test_past_capacity_the_trunk_gets_503(site: Site, tmp_path: Path) -> None:
    phone = await registered_phone(site, tmp_path, "phone_silent.xml", calls=4)
    ringing = await start_sipp(
        "caller_cancels.xml",
        tmp_path,
        target=site.kamailio.address,
        pause_ms=4000,
        calls=4,
        rate=20,
    )
    bridge = site.bridge
    while len(bridge.of(ev.CallRinging)) < 4:
        bridge.changed.clear()
        await asyncio.wait_for(bridge.changed.wait(), 10)
    extra = await start_sipp("caller_refused.xml", tmp_path, target=site.kamailio.address)
    assert await extra.wait() == 0, extra.log()
    assert extra.responses()[-1] == 503
    assert await ringing.wait() == 0, ringing.log()
    assert await phone.wait() == 0, phone.log()
    ends = await bridge.ended(4)
    assert [e.disposition for e in ends] == [ev.Disposition.ABANDONED] * 4
    assert [w.taken for w in bridge.pool.status.workers] == [2, 2]
    assert len(bridge.of(ev.CallStarted)) == 4  # the fifth never reached a worker


async def test_a_killed_worker_fails_its_call_and_the_next_call_goes_to_the_other(
    site: Site, tmp_path: Path
) -> None:
    phone = await registered_phone(
        site, tmp_path, "phone.xml", pause_ms=300, rtp_echo=True, calls=3
    )
    bridge = site.bridge
    first = await start_sipp("caller.xml", tmp_path, target=site.kamailio.address, pause_ms=30000)
    while not bridge.of(ev.CallAnswered):
        bridge.changed.clear()
        await asyncio.wait_for(bridge.changed.wait(), 10)
    second = await start_sipp("caller.xml", tmp_path, target=site.kamailio.address, pause_ms=6000)
    while len(bridge.of(ev.CallAnswered)) < 2:
        bridge.changed.clear()
        await asyncio.wait_for(bridge.changed.wait(), 10)
    assert [w.taken for w in bridge.pool.status.workers] == [1, 1]
    # The first call's worker dies (its caller has long had the 200: the second call rang
    # 0.3 s after it).
    doomed = bridge.pool.worker_of(bridge.of(ev.CallAnswered)[0].call_id)
    assert doomed is not None
    other = 1 - doomed
    killed = bridge.pool.pids()[doomed]
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    (failed,) = await bridge.ended()
    assert failed.disposition is ev.Disposition.FAILED
    await first.kill()
    # Kamailio still counts a call on the dead worker, or has marked it down: either way the
    # next call is answered by the other one (after a failover when it tried the dead one).
    third = await start_sipp("caller.xml", tmp_path, target=site.kamailio.address, pause_ms=1000)
    assert await third.wait() == 0, third.log()
    assert await second.wait() == 0, second.log()
    ends = await bridge.ended(3)
    assert [e.disposition for e in ends[1:]] == [ev.Disposition.ANSWERED] * 2
    workers = bridge.pool.status.workers
    assert (workers[doomed].failed_calls, workers[doomed].alive) == (1, False)
    assert workers[other].taken == 2
    await phone.kill()


async def test_click_to_call_reaches_the_phone_and_the_client_through_kamailio(
    site: Site, tmp_path: Path
) -> None:
    agent = await registered_phone(site, tmp_path, "phone.xml", pause_ms=500, rtp_echo=True)
    await site.bridge.pool.originate(
        OriginateRequest(crm_call_id="crm-9", agent="101", number="79161234567")
    )
    assert await site.trunk.wait() == 0, site.trunk.log()
    assert await agent.wait() == 0, agent.log()
    (end,) = await site.bridge.ended()
    assert (end.disposition, end.crm_call_id, end.agents) == (
        ev.Disposition.ANSWERED,
        "crm-9",
        ("101",),
    )
    assert site.trunk.received("INVITE") == 1
    seconds, rms = wav_stats(site.bridge.recordings / f"{end.call_id}.wav")
    assert abs(seconds - end.talk_s) < 0.5 and rms > 500


async def test_an_unregistered_extension_is_not_found(site: Site, tmp_path: Path) -> None:
    caller = await start_sipp("caller_refused.xml", tmp_path, target=site.kamailio.address)
    assert await caller.wait() == 0, caller.log()
    (end,) = await site.bridge.ended()
    # Kamailio answers the worker 404 for extension 101; the router has nobody else.
    assert caller.responses()[-1] == 480
    assert end.disposition is ev.Disposition.MISSED
