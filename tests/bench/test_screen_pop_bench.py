"""Screen-pop latency under load, the whole production path: the AMI simulator writes a
`DialBegin` frame → `callcard telephony` (the AMI adapter) → Redis Stream → `callcard api`
(call-event service, card summary) → Redis pub/sub → the manager's WebSocket receives
`call.ringing`.

The timed path starts when `DialBegin` is written. With the realistic lead (BENCH_LEAD
"spread": 20 ms between a call's frames, about 0.6 s from `Newchannel` to `DialBegin`)
the client lookup among 1,000,000 in PostgreSQL has already run on `Newchannel`, so it is
NOT in the figure; the "none" lead writes every frame up to `DialBegin` at once, so the
lookup and card preparation are timed too.

By default a background CPU hog (a process busy on one core) runs for the whole
benchmark (BENCH_HOG=0 turns it off). Each phase prints p50/p99 (target p99 ≤ 20 ms), the
load average, and the API process's CPU ms per call (its utime+stime over the phase,
backlog drain included, divided by the calls), and where the machine's CPU per call
goes: the API, `callcard telephony`, PostgreSQL, Redis and the benchmark's own process
(the AMI simulator and the socket), summed against one core. BENCH_API_LOG=<file> keeps
the API's log. BENCH_PROFILE=<file> runs the API under cProfile (slower: its CPU figures
then include the profiler's) and prints its heaviest entries at the end.

Phases: every rate in BENCH_CALL_RATE (comma-separated, default 10, 50 and 100 calls/s) × every lead
in BENCH_LEAD (default "spread,none"), BENCH_SECONDS each (default 20); each call is the
captured answered inbound call with a caller drawn from the seeded clients, or, for the
share BENCH_NEW_CALLERS (default 0), from numbers no card has (a fresh card at each start)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
from bench.load import CpuBudget, cpu_hog, cpu_seconds, loadavg, report_cpu, report_profile
from bench.measure import call_events_handled, percentile, report
from bench.seeding import CLIENTS, bench_database, number, seed_clients
from support.children import dies_with_us
from support.factories import _HASH, PASSWORD
from support.peers import free_port, missing
from support.server import ApiProcess, api_process
from support.servers import PgServer
from websockets.asyncio.client import ClientConnection, connect

from telephony.ami.frames import encode_message
from telephony.ami.simulator import AmiSimulator, Pairs, prepare

# One phase per rate, on the same seeded database: "20,50" measures 20 calls/s, then 50.
RATES = [float(r) for r in os.environ.get("BENCH_CALL_RATE", "10,50,100").split(",")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
LEADS = os.environ.get("BENCH_LEAD", "spread,none").split(",")
# The share of calls from numbers no card has (each gets a fresh card at its start).
NEW_CALLERS = float(os.environ.get("BENCH_NEW_CALLERS", "0"))
_UNSEEN = iter(range(CLIENTS + 1, 10_000_000))  # number(i) of these is nobody's, in any phase
DRAIN_IDLE_S = 60.0  # a backlog behind an overloaded API may hold the first pop this long
CAPTURE_CALLER = "79161234567"  # the caller of the incoming-answered capture
PROFILE = os.environ.get("BENCH_PROFILE")
API_LOG = os.environ.get("BENCH_API_LOG")  # a file for the API process's log


@contextlib.asynccontextmanager
async def telephony_process(database_url: str, redis_url: str, ami_url: str) -> AsyncIterator[int]:
    env = {
        **os.environ,
        "CALLCARD_DATABASE_URL": database_url,
        "CALLCARD_REDIS_URL": redis_url,
        "CALLCARD_AMI_URL": ami_url,
        "CALLCARD_AGI_BIND": f"127.0.0.1:{free_port()}",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crm_api.cli", "telephony", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=dies_with_us(),
    )  # fmt: skip
    try:
        yield proc.pid
    finally:
        proc.terminate()
        await proc.wait()


async def _postmaster_pid(dsn: str) -> int:
    """The PostgreSQL server's process (its backends are its children); 0 when it runs
    elsewhere."""
    conn = await asyncpg.connect(dsn)
    try:
        data = await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()
    try:
        return int((Path(data) / "postmaster.pid").read_text().split()[0])
    except OSError:
        return 0


async def _redis_pid(redis_url: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        return int((await client.info("server"))["process_id"])
    finally:
        await client.aclose()


async def _pops_published(http: httpx.AsyncClient) -> tuple[float, int]:
    """The API's `callcard_screen_pop_seconds` so far (sum, count): from the ring's append
    to the call stream to its pop published on the bus."""
    text = (await http.get("/metrics")).text
    figures = dict(
        line.split(" ", 1)
        for line in text.splitlines()
        if line.startswith("callcard_screen_pop_seconds_sum")
        or line.startswith("callcard_screen_pop_seconds_count")
    )
    return (
        float(figures.get("callcard_screen_pop_seconds_sum", 0)),
        int(float(figures.get("callcard_screen_pop_seconds_count", 0))),
    )


async def add_manager(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO users (username, full_name, password_hash, role, language, is_active,"
            " extension, created_at) VALUES ('m101', 'Менеджер 101', $1, 'manager', 'ru', true,"
            " '101', now())",
            _HASH,
        )
    finally:
        await conn.close()


async def test_screen_pop_latency_at_50_calls_per_second(
    pg_server: PgServer, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
    except aioredis.RedisError as exc:
        missing("Redis", str(exc))
    finally:
        await client.aclose()
    async with bench_database(pg_server) as (url, dsn):
        t = time.perf_counter()
        await seed_clients(dsn)
        await add_manager(dsn)
        print(f"\nseeded {CLIENTS:,} clients in {time.perf_counter() - t:.0f} s")
        async with (
            AmiSimulator() as pbx,
            api_process(
                url,
                profile=Path(PROFILE) if PROFILE else None,
                log=Path(API_LOG) if API_LOG else None,
                CALLCARD_REDIS_URL=redis_url,
            ) as server,
            telephony_process(url, redis_url, pbx.url) as telephony_pid,
        ):
            budget = CpuBudget(
                {
                    "API": server.process.pid,
                    "telephony": telephony_pid,
                    "PostgreSQL": await _postmaster_pid(dsn),
                    "Redis": await _redis_pid(redis_url),
                    "bench (AMI simulator, socket)": os.getpid(),
                },
                trees=frozenset({"PostgreSQL"}),  # its backends
            )
            async with httpx.AsyncClient(base_url=server.base_url + "/api/v1") as http:
                r = await http.post("/auth/login", json={"username": "m101", "password": PASSWORD})
                token = r.json()["token"]
            for _ in range(200):
                if pbx.sessions:
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("callcard telephony did not log in to the simulator")
            ws_url = server.base_url.replace("http", "ws") + "/ws"
            async with connect(
                ws_url, additional_headers={"Authorization": f"Bearer {token}"}
            ) as ws:
                with cpu_hog():
                    for rate in RATES:
                        for lead in LEADS:
                            await _phase(pbx, ws, rate, lead, server, redis_url, budget)
    if PROFILE:
        report_profile(PROFILE)


FRAME_APART_S = 0.02  # a call's events spread like a real one's


def _schedule(events: list[Pairs], lead: str) -> list[tuple[float, list[bytes], str | None]]:
    """A call's frames as (seconds after its start, frames written together, the Linkedid
    of the one that holds its `DialBegin`). Lead "spread": one frame every FRAME_APART_S;
    "none": everything up to `DialBegin` at once (no time to prepare the card), the rest
    spread after it."""
    dial = next(i for i, p in enumerate(events) if dict(p).get("Event") == "DialBegin")
    linkedid = dict(events[dial])["Linkedid"]
    wire = [encode_message(pairs) for pairs in events]
    if lead == "none":
        head = [(0.0, wire[: dial + 1], linkedid)]
        return head + [(FRAME_APART_S * i, [f], None) for i, f in enumerate(wire[dial + 1 :], 1)]
    return [(FRAME_APART_S * i, [f], linkedid if i == dial else None) for i, f in enumerate(wire)]


async def _phase(
    pbx: AmiSimulator,
    ws: ClientConnection,
    rate: float,
    lead: str,
    server: ApiProcess,
    redis_url: str,
    budget: CpuBudget,
) -> None:
    if lead not in ("spread", "none"):
        raise ValueError(f"BENCH_LEAD: {lead!r} is neither 'spread' nor 'none'")
    sent: dict[str, float] = {}
    received: dict[str, float] = {}

    async def listen() -> None:
        async for raw in ws:
            at = time.perf_counter()
            if "call.ringing" in raw:  # the other frames are not timed: left unparsed
                frame = json.loads(raw)
                if frame["type"] == "call.ringing":
                    received.setdefault(frame["data"]["call_id"], at)

    listener = asyncio.create_task(listen())
    rng = random.Random(3)

    # Each call's events are made (fresh ids, its caller) and encoded before the clock
    # starts, and one loop writes them all when they are due: a PBX spends nothing of this
    # machine's CPU on that (a task and a timer per frame cost the benchmark's process about
    # 50 µs of CPU per frame, 4.5–5 ms per call), and the phase measures Callcard's.
    def caller() -> str:
        known = NEW_CALLERS == 0 or rng.random() >= NEW_CALLERS  # the same draws at 0
        return number(rng.randint(1, CLIENTS) if known else next(_UNSEEN))[1:]

    calls = math.ceil(rate * SECONDS)
    timeline = sorted(
        (k / rate + due, k, frames, linkedid)
        for k in range(calls)
        for due, frames, linkedid in _schedule(
            prepare("incoming-answered", literals={CAPTURE_CALLER: caller()}), lead
        )
    )
    api_pid = server.process.pid
    metrics = httpx.AsyncClient(base_url=server.base_url)
    published_before = await _pops_published(metrics)
    cpu_before = cpu_seconds(api_pid)
    budget.start()
    begin = time.perf_counter()
    for due, _, frames, linkedid in timeline:
        wait = begin + due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        if linkedid is not None:
            sent[linkedid] = time.perf_counter()
        for frame in frames:  # each frame its own write, as Asterisk writes them
            pbx.inject(frame)
    # A backlog drains after the load stops: wait while pops keep arriving, then until
    # the API has handled every call event (the next phase and the CPU figure start clean).
    last, idle = -1, 0.0
    while len(received) < len(sent) and idle < DRAIN_IDLE_S:
        await asyncio.sleep(0.5)
        idle = 0.0 if len(received) != last else idle + 0.5
        last = len(received)
    await call_events_handled(redis_url)
    listener.cancel()
    latencies = [received[c] - sent[c] for c in sent if c in received]
    print(
        f"{calls} calls at {rate:g}/s for {SECONDS:g} s, lead {lead}, "
        f"{NEW_CALLERS:.0%} from new numbers; pops received {len(latencies)}/{len(sent)}"
    )
    assert latencies, f"no pop arrived within {DRAIN_IDLE_S:g} s of the last one"
    report("DialBegin → call.ringing on /ws", latencies, 20)
    print(
        f"max {max(latencies) * 1000:.1f} ms, p90 {percentile(latencies, 0.9) * 1000:.1f} ms"
        f"  {loadavg()}"
    )
    (total, count), (total_before, count_before) = await _pops_published(metrics), published_before
    await metrics.aclose()
    if count > count_before:
        published = (total - total_before) / (count - count_before)
        print(
            f"mean {statistics.fmean(latencies) * 1000:.2f} ms, of it ring appended → pop"
            f" published (the API's callcard_screen_pop_seconds) {published * 1000:.2f} ms"
        )
    report_cpu("API process per call", api_pid, cpu_before, calls)
    budget.report(calls, rate)
    assert len(latencies) == len(sent), "some pops never arrived"
