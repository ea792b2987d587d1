"""Pop fan-out with many operators online, over two API workers: BENCH_SOCKETS operators
(2,000) each with a phone and a /ws socket, alternately on worker A and worker B behind
no balancer; `callcard telephony` reads the AMI simulator, the call-event stream is
partitioned between the two workers, and 50 calls/s (BENCH_CALL_RATE) ring the operators
in turn for BENCH_SECONDS. Prints DialBegin → call.ringing on the rung operator's socket,
p50/p99 (target p99 ≤ 50 ms), pops received, and the workers' memory per socket."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import redis.asyncio as aioredis
from bench.measure import percentile, report
from bench.seeding import bench_database
from support.factories import Actor, make_user
from support.peers import free_port, missing
from support.processes import headless
from support.server import ApiProcess, api_process
from support.servers import PgServer
from websockets.asyncio.client import ClientConnection, connect

from crm_api.accounts.models import Role
from crm_api.platform.db.session import make_engine, make_sessionmaker
from telephony.ami.simulator import AmiSimulator, prepare

SOCKETS = int(os.environ.get("BENCH_SOCKETS", "2000"))
RATE = float(os.environ.get("BENCH_CALL_RATE", "50"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
FIRST_EXTENSION = 2000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def operators(url: str) -> list[Actor]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            made = [
                await make_user(session, Role.OPERATOR, extension=str(FIRST_EXTENSION + i))
                for i in range(SOCKETS)
            ]
            await session.commit()
    finally:
        await engine.dispose()
    return made


async def open_sockets(workers: list[ApiProcess], actors: list[Actor]) -> list[ClientConnection]:
    async def one(i: int, actor: Actor) -> ClientConnection:
        url = workers[i % len(workers)].base_url.replace("http", "ws") + "/ws"
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {actor.token}"})
        while json.loads(await ws.recv())["type"] != "hello":
            pass
        return ws

    sockets: list[ClientConnection] = []
    for start in range(0, len(actors), 100):  # a hundred handshakes at a time
        batch = actors[start : start + 100]
        sockets += await asyncio.gather(*(one(start + i, a) for i, a in enumerate(batch)))
    return sockets


async def test_pop_fan_out_with_2000_operators_on_two_workers(
    pg_server: PgServer, redis_url: str, tmp_path: Path
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
    except aioredis.RedisError as exc:
        missing("Redis", str(exc))
    finally:
        await client.aclose()
    env = {"CALLCARD_REDIS_URL": redis_url, "CALLCARD_RECORDINGS_DIR": str(tmp_path)}
    async with bench_database(pg_server) as (url, _dsn):
        actors = await operators(url)
        async with (
            AmiSimulator() as pbx,
            api_process(url, log=tmp_path / "a.log", **env) as a,
            api_process(url, log=tmp_path / "b.log", **env) as b,
            headless(
                "telephony",
                "telephony",
                tmp_path,
                CALLCARD_DATABASE_URL=url,
                CALLCARD_REDIS_URL=redis_url,
                CALLCARD_AMI_URL=pbx.url,
                CALLCARD_AGI_BIND=f"127.0.0.1:{free_port()}",
                CALLCARD_SPOOL_DIR=str(tmp_path / "spool"),
            ),
        ):
            for _ in range(300):
                if pbx.sessions:
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("callcard telephony did not log in to the simulator")
            before = rss_mb(a.process.pid) + rss_mb(b.process.pid)
            t = time.perf_counter()
            sockets = await open_sockets([a, b], actors)
            print(f"\n{len(sockets)} sockets open in {time.perf_counter() - t:.1f} s")
            await asyncio.sleep(2)
            after = rss_mb(a.process.pid) + rss_mb(b.process.pid)
            print(
                f"API workers' RSS {before:.0f} → {after:.0f} MB:"
                f" {(after - before) * 1024 / len(sockets):.1f} KB per socket"
            )
            try:
                await _calls(pbx, sockets)
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        print(f"load average {os.getloadavg()}")


async def _calls(pbx: AmiSimulator, sockets: list[ClientConnection]) -> None:
    sent: dict[str, float] = {}
    received: dict[str, float] = {}

    async def listen(ws: ClientConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "call.ringing":
                received.setdefault(frame["data"]["call_id"], time.perf_counter())

    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]

    async def one_call(n: int) -> None:
        # The captured call rings 101: here, the next operator in turn.
        agent = str(FIRST_EXTENSION + n % len(sockets))
        for pairs in prepare("incoming-answered", literals={"101": agent}):
            fields = dict(pairs)
            if fields.get("Event") == "DialBegin":
                sent[fields["Linkedid"]] = time.perf_counter()
            await pbx.emit([pairs])
            await asyncio.sleep(0.02)

    calls: set[asyncio.Task[None]] = set()
    begin = time.perf_counter()
    n = 0
    while time.perf_counter() - begin < SECONDS:
        task = asyncio.create_task(one_call(n))
        calls.add(task)
        task.add_done_callback(calls.discard)
        n += 1
        await asyncio.sleep(max(begin + n / RATE - time.perf_counter(), 0))
    await asyncio.gather(*calls)
    last, idle = -1, 0.0
    while len(received) < len(sent) and idle < 10:
        await asyncio.sleep(0.5)
        idle = 0.0 if len(received) != last else idle + 0.5
        last = len(received)
    for listener in listeners:
        listener.cancel()
    latencies = [received[c] - sent[c] for c in sent if c in received]
    print(f"{n} calls at {RATE:g}/s for {SECONDS:g} s; pops received {len(latencies)}/{len(sent)}")
    report("DialBegin → call.ringing, 2 workers", latencies, 50)
    print(f"max {max(latencies) * 1000:.1f} ms, p90 {percentile(latencies, 0.9) * 1000:.1f} ms")
    assert len(latencies) == len(sent), "some pops never arrived"
