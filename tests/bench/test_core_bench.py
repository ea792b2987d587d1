"""1,000,000 clients in PostgreSQL, measured through the HTTP API: exact phone lookup,
card fetch with the last 20 communications, phone-fragment search. Prints p50/p99.

Targets (issue "The Callcard core"): p99 ≤ 2 ms, ≤ 10 ms, ≤ 50 ms. A background CPU hog
runs throughout unless BENCH_HOG=0; each figure has the load average beside it, and the
lookup and card figures the API process's CPU ms per request.

The client is `bench.lean_http` (one keep-alive connection, every response read whole and
its status checked), not httpx: httpx's own ~1 ms per request in this process counted
against the server's 2 ms."""

from __future__ import annotations

import os
import random
import time
from urllib.parse import quote

from bench.lean_http import LeanClient
from bench.load import cpu_hog, cpu_seconds, report_cpu
from bench.measure import report
from bench.seeding import CLIENTS, WITH_HISTORY, bench_database, number, seed_clients
from support.factories import PASSWORD
from support.server import api_process
from support.servers import PgServer

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1000"))


async def _measure(http: LeanClient, paths: list[str]) -> list[float]:
    for p in paths[:50]:  # warm-up
        (await http.get(p)).raise_for_status()
    samples = []
    for p in paths:
        t = time.perf_counter()
        r = await http.get(p)
        samples.append(time.perf_counter() - t)
        assert r.status == 200, r.body
    return samples


async def test_core_api_with_a_million_clients(pg_server: PgServer) -> None:
    async with bench_database(pg_server) as (url, dsn):
        t = time.perf_counter()
        await seed_clients(dsn)
        print(f"\nseeded {CLIENTS:,} clients in {time.perf_counter() - t:.0f} s")
        with cpu_hog():
            await _run(url)


async def _run(url: str) -> None:
    async with (
        api_process(url) as server,
        LeanClient(server.base_url + "/api/v1") as http,
    ):
        r = await http.post("/auth/login", {"username": "bench", "password": PASSWORD})
        r.raise_for_status()
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        rng = random.Random(7)
        picks = [rng.randint(1, CLIENTS) for _ in range(REQUESTS)]
        forms = ["8 {a} {b}-{c}-{d}", "+7 ({a}) {b}-{c}-{d}", "{a}{b}{c}{d}"]
        lookups = []
        for i in picks:
            n = number(i)[2:]
            form = rng.choice(forms).format(a=n[:3], b=n[3:6], c=n[6:8], d=n[8:])
            lookups.append(f"/clients/lookup?phone={quote(form)}")
        pid = server.process.pid
        before = cpu_seconds(pid)
        report("exact phone lookup", await _measure(http, lookups), 2)
        report_cpu("exact phone lookup", pid, before, len(lookups) + 50)
        cards = [
            f"/clients/{c * (CLIENTS // WITH_HISTORY)}/card"
            for c in (rng.randint(1, WITH_HISTORY) for _ in range(REQUESTS))
        ]
        before = cpu_seconds(pid)
        report("card + last 20 communications", await _measure(http, cards), 10)
        report_cpu("card + last 20 communications", pid, before, len(cards) + 50)
        fragments = [f"/clients?q={number(i)[-7:]}&page_size=25" for i in picks]
        report("phone fragment search (7 digits)", await _measure(http, fragments), 50)
        short = [f"/clients?q={number(i)[-5:]}&page_size=25" for i in picks[: REQUESTS // 4]]
        report("phone fragment search (5 digits)", await _measure(http, short), 50)
