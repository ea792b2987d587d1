"""The SIP bridge pool with real pjsua2 workers; SIPp plays the carrier and the phones.

Timings are short but human-ish: phones ring about a second, calls talk a few seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from support.metrics import Scrape
from support.sip_bridge import Bridge, StartBridge, wav_stats
from support.sipp import start_sipp
from support.waiting import wait_for

from crm_api.calls.sip import PoolMetrics
from telephony import events as ev
from telephony.pbx import OriginateRequest, PbxError
from telephony.sip.config import ProviderLogin
from telephony.sip.pool import PoolConfig, SipPool

pytestmark = pytest.mark.sipp


def phone_uri(sipp_port: int, ext: str = "101") -> str:
    return f"sip:{ext}@127.0.0.1:{sipp_port}"


async def test_answered_call_is_bridged_and_recorded_with_real_audio(
    start_bridge: StartBridge, tmp_path
) -> None:
    phone = await start_sipp("phone.xml", tmp_path, pause_ms=800, rtp_echo=True)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)])
    caller = await start_sipp("caller.xml", tmp_path, target=bridge.address(), pause_ms=3000)
    assert await caller.wait() == 0, caller.log()
    assert await phone.wait() == 0, phone.log()
    (end,) = await bridge.ended()
    call_id = end.call_id
    started = bridge.of(ev.CallStarted)[0]
    assert (started.call_id, started.direction) == (call_id, ev.Direction.INBOUND)
    assert (started.caller, started.caller_name, started.did) == (
        "+79161234567",
        "Ivan Petrov",
        "74951234567",
    )
    assert [r.agent for r in bridge.of(ev.CallRinging, call_id)] == ["101"]
    assert [a.agent for a in bridge.of(ev.CallAnswered, call_id)] == ["101"]
    (recording,) = bridge.of(ev.RecordingStarted, call_id)
    assert (end.disposition, end.answered_by, end.agents) == (
        ev.Disposition.ANSWERED,
        "101",
        ("101",),
    )
    assert 0.7 <= end.ring_s <= 3.0
    assert 2.8 <= end.talk_s <= 4.5
    assert bridge.router.asks[0].caller == "+79161234567"
    assert caller.responses()[-1] == 200 and 180 in caller.responses()
    seconds, rms = wav_stats(bridge.recordings / f"{call_id}.wav")
    assert recording.file == str(bridge.recordings / f"{call_id}.wav")
    assert abs(seconds - end.talk_s) < 0.5, (seconds, end.talk_s)
    assert rms > 500, f"the recording is silence (RMS {rms:.0f})"


async def test_a_manager_who_never_answers_is_given_up_for_the_next(
    start_bridge: StartBridge, tmp_path
) -> None:
    silent = await start_sipp("phone_silent.xml", tmp_path)
    answering = await start_sipp("phone.xml", tmp_path, pause_ms=500, rtp_echo=True)
    await asyncio.gather(silent.listening(), answering.listening())
    bridge = await start_bridge(
        [phone_uri(silent.port, "101"), phone_uri(answering.port, "102")], ring_timeout_s=1.5
    )
    caller = await start_sipp("caller.xml", tmp_path, target=bridge.address(), pause_ms=1500)
    assert await caller.wait() == 0, caller.log()
    assert await silent.wait() == 0, silent.log()  # it got the CANCEL
    (end,) = await bridge.ended()
    assert [r.agent for r in bridge.of(ev.CallRinging)] == ["101", "102"]
    assert [a.attempt for a in bridge.router.asks] == [1, 2]
    assert (end.disposition, end.answered_by) == (ev.Disposition.ANSWERED, "102")
    assert end.ring_s >= 1.5


async def test_busy_phone_gives_the_caller_busy(start_bridge: StartBridge, tmp_path) -> None:
    phone = await start_sipp("phone_busy.xml", tmp_path)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)])
    caller = await start_sipp("caller_refused.xml", tmp_path, target=bridge.address())
    assert await caller.wait() == 0, caller.log()
    (end,) = await bridge.ended()
    assert caller.responses()[-1] == 486
    assert (end.disposition, end.cause, end.talk_s) == (ev.Disposition.BUSY, 17, 0)


async def test_nobody_on_duty_is_missed_with_480(start_bridge: StartBridge, tmp_path) -> None:
    bridge = await start_bridge([None])
    caller = await start_sipp("caller_refused.xml", tmp_path, target=bridge.address())
    assert await caller.wait() == 0, caller.log()
    (end,) = await bridge.ended()
    assert caller.responses()[-1] == 480
    assert end.disposition is ev.Disposition.MISSED
    assert bridge.of(ev.CallRinging) == []


async def test_every_manager_ringing_out_is_missed(start_bridge: StartBridge, tmp_path) -> None:
    phone = await start_sipp("phone_silent.xml", tmp_path)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)], ring_timeout_s=1.0, max_attempts=1)
    caller = await start_sipp("caller_refused.xml", tmp_path, target=bridge.address())
    assert await caller.wait() == 0, caller.log()
    assert await phone.wait() == 0, phone.log()
    (end,) = await bridge.ended()
    assert caller.responses()[-1] == 480
    assert (end.disposition, end.agents) == (ev.Disposition.MISSED, ())
    assert end.ring_s >= 1.0


async def test_caller_hanging_up_while_ringing_is_abandoned(
    start_bridge: StartBridge, tmp_path
) -> None:
    phone = await start_sipp("phone_silent.xml", tmp_path)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)])
    caller = await start_sipp("caller_cancels.xml", tmp_path, target=bridge.address())
    assert await caller.wait() == 0, caller.log()  # 200 to its CANCEL, then 487
    assert await phone.wait() == 0, phone.log()  # the CANCEL reached the phone
    (end,) = await bridge.ended()
    assert caller.responses()[-1] == 487 and 200 in caller.responses()  # to the CANCEL
    assert end.disposition is ev.Disposition.ABANDONED
    assert bridge.of(ev.CallAnswered) == []


async def test_phone_hanging_up_ends_the_caller_leg(start_bridge: StartBridge, tmp_path) -> None:
    phone = await start_sipp("phone_hangs_up.xml", tmp_path, pause_ms=1500)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)])
    caller = await start_sipp("caller_waits.xml", tmp_path, target=bridge.address())
    assert await phone.wait() == 0, phone.log()
    assert await caller.wait() == 0, caller.log()  # it got the BYE
    (end,) = await bridge.ended()
    assert (end.disposition, end.answered_by) == (ev.Disposition.ANSWERED, "101")
    assert 1.3 <= end.talk_s <= 3.0


async def test_two_calls_at_once_on_one_worker(start_bridge: StartBridge, tmp_path) -> None:
    phone = await start_sipp("phone.xml", tmp_path, pause_ms=500, rtp_echo=True, calls=2)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)])
    caller = await start_sipp(
        "caller.xml", tmp_path, target=bridge.address(), pause_ms=2500, calls=2, rate=10
    )
    assert await caller.wait() == 0, caller.log()
    ends = await bridge.ended(2)
    assert [e.disposition for e in ends] == [ev.Disposition.ANSWERED] * 2
    answers = sorted(a.at for a in bridge.of(ev.CallAnswered))
    assert answers[1] < min(e.at for e in ends), "the second call was not bridged meanwhile"
    for end in ends:
        seconds, rms = wav_stats(bridge.recordings / f"{end.call_id}.wav")
        assert abs(seconds - end.talk_s) < 0.5 and rms > 500


async def test_a_killed_worker_reports_its_call_failed_and_comes_back(
    start_bridge: StartBridge, tmp_path
) -> None:
    phone = await start_sipp("phone.xml", tmp_path, pause_ms=300, rtp_echo=True, calls=2)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)], workers=2, restart_backoff_s=0.2)
    first_pid = bridge.pool.pids()[0]
    assert first_pid is not None
    doomed = await start_sipp("caller.xml", tmp_path, target=bridge.address(0), pause_ms=20000)
    while not bridge.of(ev.CallAnswered):
        bridge.changed.clear()
        await asyncio.wait_for(bridge.changed.wait(), 15)
    os.kill(first_pid, signal.SIGKILL)
    (end,) = await bridge.ended()
    assert end.disposition is ev.Disposition.FAILED
    assert end.talk_s < 10
    await doomed.kill()
    # The other worker takes calls meanwhile; the killed one is back with a new process.
    caller = await start_sipp("caller.xml", tmp_path, target=bridge.address(1), pause_ms=1000)
    assert await caller.wait() == 0, caller.log()
    ends = await bridge.ended(2)
    assert ends[1].disposition is ev.Disposition.ANSWERED
    statuses = bridge.pool.status.workers
    assert statuses[0].failed_calls == 1 and statuses[0].starts == 2
    assert statuses[0].alive and bridge.pool.pids()[0] != first_pid


async def test_a_full_worker_refuses_with_503(start_bridge: StartBridge, tmp_path) -> None:
    release = asyncio.Event()
    bridge = await start_bridge([None], route_within_s=30.0)
    original = bridge.pool._router

    async def slow(ask):  # two calls wait in routing: the worker is full, legs are free
        await release.wait()
        return await original(ask)

    bridge.pool._router = slow
    waiting = await start_sipp(
        "caller_refused.xml", tmp_path, target=bridge.address(), calls=2, rate=20
    )
    while len(bridge.of(ev.CallStarted)) < 2:
        bridge.changed.clear()
        await asyncio.wait_for(bridge.changed.wait(), 10)
    extra = await start_sipp("caller_refused.xml", tmp_path, target=bridge.address())
    assert await extra.wait() == 0, extra.log()
    assert extra.responses()[-1] == 503
    release.set()
    assert await waiting.wait() == 0, waiting.log()
    assert [e.disposition for e in await bridge.ended(2)] == [ev.Disposition.MISSED] * 2
    assert bridge.pool.status.workers[0].refused == 1
    assert len(bridge.of(ev.CallStarted)) == 2  # the refused INVITE never became a call
    registry = CollectorRegistry()  # what /metrics of `callcard sip` shows
    registry.register(PoolMetrics(bridge.pool))
    scraped = Scrape(generate_latest(registry).decode())
    assert scraped.value("callcard_sip_refused_calls_total", worker=bridge.address()) == 1


async def test_bad_sip_never_crashes_a_worker(start_bridge: StartBridge, tmp_path) -> None:
    phone = await start_sipp("phone.xml", tmp_path, pause_ms=300, rtp_echo=True)
    await phone.listening()
    bridge = await start_bridge([phone_uri(phone.port)])
    pid = bridge.pool.pids()[0]
    port = bridge.pool.config.port
    invite = (
        "INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx1\r\n"
        "From: <sip:2@127.0.0.1>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: bad-1\r\n"
        "CSeq: 1 INVITE\r\nContact: <sip:2@127.0.0.1:9>\r\nContent-Type: application/sdp\r\n"
        "Content-Length: 400\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nc=IN IP4"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for junk in (b"\x00\xff garbage \r\n\r\n", b"INVITE\r\n\r\n", invite.encode()):
            udp.sendto(junk, ("127.0.0.1", port))
    with socket.create_connection(("127.0.0.1", port)) as tcp:
        tcp.sendall(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n\x00\x01")
    # A well-framed INVITE whose SDP stops halfway: a 4xx, no call.
    cut = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nc=IN IP4"
    framed = (
        invite.replace("bad-1", "bad-2")
        .replace("z9hG4bKx1", "z9hG4bKx2")  # a new transaction, not a retransmission
        .replace("Content-Length: 400", f"Content-Length: {len(cut)}")
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        reply_to = udp.getsockname()[1]
        udp.sendto(
            framed.replace("127.0.0.1:9", f"127.0.0.1:{reply_to}").encode(), ("127.0.0.1", port)
        )
        status = udp.recv(4096).split(b"\r\n", 1)[0].decode()
    assert status.startswith("SIP/2.0 4"), status
    # An offer with only a codec the bridge does not have: 488, no call.
    odd = await start_sipp(
        "caller_refused.xml",
        tmp_path,
        target=bridge.address(),
        keys={"pt": "99", "codec": "X-NOPE/8000"},
    )
    assert await odd.wait() == 0, odd.log()
    assert odd.responses()[-1] == 488
    # The worker still takes a normal call.
    caller = await start_sipp("caller.xml", tmp_path, target=bridge.address(), pause_ms=1000)
    assert await caller.wait() == 0, caller.log()
    (end,) = await bridge.ended()
    assert end.disposition is ev.Disposition.ANSWERED
    assert bridge.pool.pids()[0] == pid and bridge.pool.status.workers[0].starts == 1


async def test_click_to_call_rings_the_manager_then_the_client(
    start_bridge: StartBridge, tmp_path
) -> None:
    agent = await start_sipp("phone.xml", tmp_path, pause_ms=500, rtp_echo=True)
    client = await start_sipp("phone_hangs_up.xml", tmp_path, pause_ms=2500)
    await asyncio.gather(agent.listening(), client.listening())
    bridge: Bridge = await start_bridge(
        phone_uri=f"sip:{{user}}@127.0.0.1:{agent.port}",
        trunk_uri=f"sip:{{user}}@127.0.0.1:{client.port}",
    )
    await bridge.pool.originate(
        OriginateRequest(crm_call_id="crm-77", agent="101", number="79161234567")
    )
    assert await client.wait() == 0, client.log()
    assert await agent.wait() == 0, agent.log()
    (end,) = await bridge.ended()
    started = bridge.of(ev.CallStarted)[0]
    assert (started.direction, started.caller, started.callee, started.crm_call_id) == (
        ev.Direction.OUTBOUND,
        "101",
        "79161234567",
        "crm-77",
    )
    assert [r.agent for r in bridge.of(ev.CallRinging)] == ["101"]
    assert [a.agent for a in bridge.of(ev.CallAnswered)] == [None]
    assert (end.disposition, end.crm_call_id, end.agents) == (
        ev.Disposition.ANSWERED,
        "crm-77",
        ("101",),
    )
    seconds, rms = wav_stats(bridge.recordings / f"{end.call_id}.wav")
    assert abs(seconds - end.talk_s) < 0.5 and rms > 500
    assert client.received("INVITE") == 1


async def test_click_to_call_to_a_busy_manager_phone(start_bridge: StartBridge, tmp_path) -> None:
    agent = await start_sipp("phone_busy.xml", tmp_path)
    await agent.listening()
    bridge = await start_bridge(phone_uri=f"sip:{{user}}@127.0.0.1:{agent.port}")
    await bridge.pool.originate(OriginateRequest(crm_call_id="crm-78", agent="101", number="7916"))
    assert await agent.wait() == 0, agent.log()
    while not bridge.of(ev.OriginateFailed):
        bridge.changed.clear()
        await asyncio.wait_for(bridge.changed.wait(), 10)
    (failed,) = bridge.of(ev.OriginateFailed)
    assert (failed.crm_call_id, failed.reason) == ("crm-78", "agent_busy")
    assert bridge.of(ev.CallStarted) == [] and bridge.of(ev.CallEnded) == []


async def test_a_worker_that_cannot_listen_fails_the_start_at_once(tmp_path) -> None:
    async def nowhere(event: ev.CallEvent) -> None:
        raise AssertionError(f"no call expected: {event}")

    async def nobody(ask: object) -> None:
        return None

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        config = PoolConfig(recordings_dir=tmp_path, port=taken.getsockname()[1])
        pool = SipPool(config, nowhere, nobody)
        with pytest.raises(PbxError, match="exited at start"):
            await pool.start()
    assert pool.status.workers[0].alive is False


async def test_the_bridge_registers_at_the_provider_and_retries_a_failed_registration(
    start_bridge: StartBridge, tmp_path
) -> None:
    registrar = await start_sipp("provider_registrar.xml", tmp_path, calls=2)
    await registrar.listening()
    login = ProviderLogin(
        registrar=f"sip:127.0.0.1:{registrar.port}", username="alice", password="s3cret", retry_s=1
    )
    bridge = await start_bridge(login=login)
    assert await registrar.wait() == 0, registrar.log()  # 503, challenge, verified, bound
    status = bridge.pool.status.workers[0]

    async def registered() -> bool:
        return bool(status.registered)

    await wait_for(registered, within=10)
    assert status.registration.startswith("200")
    assert registrar.log().count("REGISTER sip:127.0.0.1") >= 3
    assert 'Digest username="alice"' in registrar.log()


async def test_click_to_call_past_capacity_is_refused_at_once(
    start_bridge: StartBridge, tmp_path
) -> None:
    agent = await start_sipp("phone_silent.xml", tmp_path, calls=2)
    await agent.listening()
    bridge = await start_bridge(phone_uri=f"sip:{{user}}@127.0.0.1:{agent.port}")
    for n in (1, 2):
        await bridge.pool.originate(
            OriginateRequest(crm_call_id=f"crm-{n}", agent="101", number="7916")
        )
    with pytest.raises(PbxError) as refused:
        await bridge.pool.originate(
            OriginateRequest(crm_call_id="crm-3", agent="101", number="7916")
        )
    assert refused.value.reason == "pbx_busy"
    assert bridge.pool.status.workers[0].calls == 2
