"""SIP bridge at scale: concurrent bridged and recorded calls through Kamailio and the pool.

SIPp is the carrier (G.711 pcap audio) and one registered phone (extension 101, echoing the
audio back); `SIP_BENCH_CALLS` calls (default 40, on calls/2 workers) are all up at once
for `SIP_BENCH_TALK_S` seconds. Reported: calls answered and dropped, the workers' CPU and
memory per bridged call while all talk, and the set-up time from the carrier's INVITE to
the INVITE reaching the manager's phone (the phone rings at once), p50/p99. Then, through
Callcard itself, the time from the INVITE to `call.ringing` on the manager's socket.

    make bench PYTEST_ARGS='-k sip'
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from datetime import datetime
from datetime import time as dtime
from pathlib import Path

from bench.measure import percentile
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.kamailio import running_kamailio
from support.peers import free_port
from support.server import running_api
from support.sip_bridge import CallLog, ScriptedRouter, wav_stats
from support.sipp import start_sipp
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.pipeline import start_call_events
from crm_api.calls.sip import start_sip
from crm_api.platform.settings import Settings
from crm_api.schedules import service as schedules
from telephony import events as ev
from telephony.sip.pool import PoolConfig, SipPool

CALLS = int(os.environ.get("SIP_BENCH_CALLS", "40"))
TALK_S = float(os.environ.get("SIP_BENCH_TALK_S", "20"))
TICK = os.sysconf("SC_CLK_TCK")
_STAMP = re.compile(r"^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def invite_times(trace: str, key: str) -> dict[str, float]:
    """Per `key` header value (Call-ID or X-Callcard-Reference): when the INVITE was
    sent or received, from SIPp's message trace."""
    times: dict[str, float] = {}
    stamp = None
    lines = trace.splitlines()
    for i, line in enumerate(lines):
        found = _STAMP.match(line)
        if found:
            stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            continue
        if line.startswith("INVITE ") and stamp is not None:
            for header in lines[i : i + 40]:
                if header.lower().startswith(key.lower() + ":"):
                    times.setdefault(header.split(":", 1)[1].strip(), stamp)
                    break
    return times


async def test_concurrent_bridged_calls_through_kamailio(tmp_path: Path) -> None:
    workers = (CALLS + 1) // 2
    kamailio_port = free_port()
    at_kamailio = f"sip:{{user}}@127.0.0.1:{kamailio_port}"
    log = CallLog()
    pool = SipPool(
        PoolConfig(
            recordings_dir=tmp_path / "recordings",
            port=free_port(workers),
            workers=workers,
            phone_uri=at_kamailio,
            trunk_uri=at_kamailio,
            ring_timeout_s=30,
        ),
        log.sink,
        ScriptedRouter(["101"]),
    )
    await pool.start(within_s=120)
    try:
        addresses = [f"127.0.0.1:{pool.config.port + i}" for i in range(workers)]
        async with running_kamailio(
            tmp_path, addresses, trunk="127.0.0.1:9", port=kamailio_port
        ) as kamailio:
            phone = await start_sipp(
                "phone.xml", tmp_path, pause_ms=1000, rtp_echo=True, calls=CALLS
            )
            await phone.listening()
            register = await start_sipp(
                "register.xml",
                tmp_path,
                target=kamailio.address,
                service="101",
                keys={"contact_port": str(phone.port)},
            )
            assert await register.wait() == 0, register.log()
            pids = [p for p in pool.pids() if p is not None]
            idle_rss = sum(rss_mb(p) for p in pids)
            caller = await start_sipp(
                "caller.xml",
                tmp_path,
                target=kamailio.address,
                pause_ms=int(TALK_S * 1000),
                calls=CALLS,
                rate=10,
                limit=CALLS,
            )
            while len(log.of(ev.CallAnswered)) < CALLS and caller.proc.returncode is None:
                log.changed.clear()
                try:
                    await asyncio.wait_for(log.changed.wait(), 30)
                except TimeoutError:
                    break
            all_up = len(log.of(ev.CallAnswered)) == CALLS
            # While every call talks: CPU and memory of the workers.
            cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
            await asyncio.sleep(min(8.0, TALK_S / 2))
            cpu1, t1 = sum(cpu_seconds(p) for p in pids), time.monotonic()
            busy_rss = sum(rss_mb(p) for p in pids)
            caller_rc = await caller.wait(TALK_S + 120)
            ends = await log.ended(CALLS, within=TALK_S + 60)
            await phone.wait(30)
    finally:
        await pool.stop()

    answered = [e for e in ends if e.disposition is ev.Disposition.ANSWERED]
    sent = invite_times(caller.log(), "Call-ID")
    rang = invite_times(phone.log(), "X-Callcard-Reference")
    setup = [rang[c] - sent[c] for c in sent if c in rang]
    silent = 0
    for end in answered:
        _, rms = wav_stats(tmp_path / "recordings" / f"{end.call_id}.wav")
        silent += rms < 500
    cpu_pct = (cpu1 - cpu0) / (t1 - t0) * 100
    load = os.getloadavg()
    print()
    print(
        f"SIP bridge, {CALLS} calls on {workers} workers behind Kamailio "
        f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)"
    )
    print(
        f"  all up at once: {all_up}; answered {len(answered)}/{CALLS}, "
        f"dropped {CALLS - len(answered)}, silent recordings {silent}"
    )
    print(
        f"  workers' CPU while all talk: {cpu_pct:.1f}% of a core = {cpu_pct / CALLS:.2f}% per call"
    )
    print(
        f"  workers' memory: {idle_rss:.0f} MB idle ({idle_rss / workers:.0f} MB each), "
        f"{busy_rss:.0f} MB talking = {(busy_rss - idle_rss) / CALLS:.2f} MB per call"
    )
    if setup:
        print(
            f"  carrier INVITE -> phone INVITE: n={len(setup)} "
            f"p50={percentile(setup, 0.5) * 1000:.1f} ms "
            f"p99={percentile(setup, 0.99) * 1000:.1f} ms"
        )
    assert caller_rc == 0, caller.log()[-3000:]
    assert len(answered) == CALLS, f"{CALLS - len(answered)} calls dropped"
    assert silent == 0


POP_CALLS = int(os.environ.get("SIP_BENCH_POP_CALLS", "20"))


async def test_invite_to_the_card_popping_on_the_operators_socket(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """`callcard run` with CALLCARD_SIP_BIND (one worker, no Kamailio): a call a second;
    from the carrier's INVITE to `call.ringing` on the manager's socket."""
    manager = actors[Role.MANAGER]
    async with db() as session:
        for day in range(7):
            await schedules.add_shift(session, manager.user.id, day, dtime(0), dtime(23, 59), False)
        await session.commit()
    phone = await start_sipp("phone.xml", tmp_path, pause_ms=300, rtp_echo=True, calls=POP_CALLS)
    await phone.listening()
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    settings.sip_bind = f"127.0.0.1:{free_port()}"
    settings.sip_phone_uri = f"sip:{{user}}@127.0.0.1:{phone.port}"
    call_events = start_call_events
    popped: list[float] = []
    async with (
        running_api(settings, features=(call_events, start_sip)) as api,
        open_socket(api.ws_url, manager.token) as conn,
    ):
        sock = Socket(conn)
        await sock.next_of("hello")
        caller = await start_sipp(
            "caller.xml",
            tmp_path,
            target=settings.sip_bind,
            pause_ms=800,
            calls=POP_CALLS,
            rate=0.5,
        )
        for _ in range(POP_CALLS):
            try:
                await sock.next_of("call.ringing", within=30)
            except TimeoutError:
                raise AssertionError([f["type"] for f in sock.frames]) from None
            popped.append(time.time())
        assert await caller.wait(POP_CALLS + 60) == 0, caller.log()[-3000:]
    await phone.kill()
    # A call every two seconds, each over in about one (the manager is free again for the
    # routing policy): the n-th INVITE is the n-th pop's.
    sent = sorted(invite_times(caller.log(), "Call-ID").values())
    delays = [p - s for s, p in zip(sent, popped, strict=True)]
    print()
    backend = settings.database_url.split(":")[0]
    print(
        f"SIP INVITE -> call.ringing on the manager's socket ({backend}, "
        f"load average {os.getloadavg()[0]:.2f}): n={len(delays)} "
        f"p50={percentile(delays, 0.5) * 1000:.1f} ms "
        f"p99={percentile(delays, 0.99) * 1000:.1f} ms"
    )
