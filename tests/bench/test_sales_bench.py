"""Sales at scale in PostgreSQL: 100,000 deals (with their stage history) and 1,000,000
communications over a year, 20 managers. Measured through the HTTP API: every report
for one month and all managers; and the routing decision, both the pure function and
the whole entry point the FastAGI server calls (database + Redis). Prints p50/p99.

Targets (issue "Sales"): each report p99 ≤ 300 ms; routing decision p99 ≤ 2 ms."""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from bench.measure import report
from bench.seeding import CLIENT_COLUMNS, bench_database
from redis.asyncio import Redis
from support.factories import _HASH, PASSWORD
from support.server import api_process
from support.servers import PgServer

from crm_api.platform.db.session import make_engine, make_sessionmaker
from crm_api.schedules.routing import Agent, decide
from crm_api.schedules.routing_state import choose_extension

DEALS = int(os.environ.get("BENCH_DEALS", "100000"))
COMMUNICATIONS = int(os.environ.get("BENCH_COMMUNICATIONS", "1000000"))
MANAGERS = 20
CLIENTS = 20_000
REQUESTS = int(os.environ.get("BENCH_REPORT_REQUESTS", "60"))
ROUTES = int(os.environ.get("BENCH_ROUTES", "2000"))
MSK = ZoneInfo("Europe/Moscow")
YEAR = timedelta(days=365)


async def _seed(dsn: str, now: datetime) -> list[int]:
    rng = random.Random(11)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO users (username, full_name, password_hash, role, language, is_active,"
            " created_at) VALUES ('bench', 'Bench', $1, 'supervisor', 'ru', true, $2)",
            _HASH,
            now,
        )
        managers = []
        for m in range(MANAGERS):
            managers.append(
                await conn.fetchval(
                    "INSERT INTO users (username, full_name, password_hash, role, extension,"
                    " language, is_active, created_at) VALUES ($1, $2, $3, 'manager', $4, 'ru',"
                    " true, $5) RETURNING id",
                    f"m{m}",
                    f"Manager {m}",
                    _HASH,
                    str(300 + m),
                    now,
                )
            )
        for m, uid in enumerate(managers):  # everyone on duty around the clock, 7 days
            for wd in range(7):
                await conn.execute(
                    "INSERT INTO shifts (user_id, weekday, starts, minutes)"
                    " VALUES ($1, $2, $3, $4)",
                    uid,
                    wd,
                    datetime(2000, 1, 1, m % 3).time(),
                    24 * 60 - 1,
                )
        sources = [
            await conn.fetchval("INSERT INTO lead_sources (name) VALUES ($1) RETURNING id", f"S{i}")
            for i in range(8)
        ]
        segments = [
            await conn.fetchval("INSERT INTO segments (name) VALUES ($1) RETURNING id", f"G{i}")
            for i in range(5)
        ]
        await conn.copy_records_to_table(
            "clients",
            columns=[*CLIENT_COLUMNS, "manager_id", "lead_source_id", "segment_id"],
            records=[
                (
                    i,
                    "company",
                    f"C{i}",
                    f"c{i}",
                    "[]",
                    "{}",
                    False,
                    now - YEAR * rng.random(),
                    now,
                    managers[i % MANAGERS],
                    sources[i % len(sources)],
                    segments[i % len(segments)],
                )
                for i in range(1, CLIENTS + 1)
            ],
        )
        await conn.execute("SELECT setval('clients_id_seq', $1)", CLIENTS)
        stages = await conn.fetch("SELECT id, position, kind FROM deal_stages ORDER BY position")
        opened = [s for s in stages if s["kind"] == "open"]
        won = next(s["id"] for s in stages if s["kind"] == "won")
        lost = next(s["id"] for s in stages if s["kind"] == "lost")
        deals, visits = [], []
        # Rows arrive in time order in real life (an append-only log): so they do here.
        created_times = sorted(now - YEAR * rng.random() for _ in range(DEALS))
        for d in range(1, DEALS + 1):
            client = rng.randint(1, CLIENTS)
            manager = managers[client % MANAGERS]
            created = created_times[d - 1]
            at, path = created, [opened[0]["id"]]
            path += [s["id"] for s in opened[1 : rng.randint(1, len(opened))]]
            end = rng.random()
            kind = "open"
            if end < 0.35:
                path.append(won)
                kind = "won"
            elif end < 0.6:
                path.append(lost)
                kind = "lost"
            prev = None
            times = []
            for _ in path:
                times.append(at)
                at = at + timedelta(hours=rng.randint(1, 96))
            for k, stage in enumerate(path):
                left = times[k + 1] if k + 1 < len(path) else None
                visits.append((d, stage, prev, manager, times[k], left, created))
                prev = stage
            closed = times[-1] if kind != "open" else None
            deals.append(
                (
                    d,
                    client,
                    "Deal",
                    rng.randint(1, 1000) * 100_00,
                    "RUB",
                    manager,
                    path[-1],
                    kind,
                    sources[client % len(sources)],
                    "Дорого" if kind == "lost" else None,
                    created,
                    created,
                    times[-1],
                    closed,
                    times[-1],
                )
            )
        await conn.copy_records_to_table(
            "deals",
            columns=[
                "id",
                "client_id",
                "title",
                "amount_minor",
                "currency",
                "manager_id",
                "stage_id",
                "stage_kind",
                "lead_source_id",
                "lost_reason",
                "created_at",
                "updated_at",
                "stage_entered_at",
                "closed_at",
                "last_activity_at",
            ],
            records=deals,
        )
        await conn.execute("SELECT setval('deals_id_seq', $1)", DEALS)
        await conn.copy_records_to_table(
            "deal_stage_visits",
            columns=[
                "deal_id",
                "stage_id",
                "from_stage_id",
                "user_id",
                "entered_at",
                "left_at",
                "deal_created_at",
            ],
            records=visits,
        )
        kinds = [
            ("call", "inbound"),
            ("call", "outbound"),
            ("sms", "inbound"),
            ("sms", "outbound"),
            ("email", "outbound"),
            ("note", "internal"),
        ]
        batch = 100_000
        slices = max(COMMUNICATIONS // batch, 1)
        for k, start in enumerate(range(0, COMMUNICATIONS, batch)):
            rows = []
            # This batch's share of the year, oldest first.
            times = sorted(
                now - YEAR + YEAR * ((k + rng.random()) / slices)
                for _ in range(start, min(start + batch, COMMUNICATIONS))
            )
            for at in times:
                client = rng.randint(1, CLIENTS)
                kind, direction = kinds[rng.randrange(len(kinds))]
                status = "answered" if kind != "call" or rng.random() < 0.8 else "missed"
                talk = rng.randint(5, 600) if status == "answered" and kind == "call" else 0
                rows.append(
                    (
                        client,
                        kind,
                        direction,
                        status,
                        managers[client % MANAGERS],
                        at,
                        json.dumps({"talk_s": float(talk)}),
                        now,
                    )
                )
            await conn.copy_records_to_table(
                "communications",
                columns=[
                    "client_id",
                    "kind",
                    "direction",
                    "status",
                    "user_id",
                    "occurred_at",
                    "details",
                    "created_at",
                ],
                records=rows,
            )
        for uid in managers:
            for k in range(13):
                month = (now.date().replace(day=1) - timedelta(days=31 * k)).replace(day=1)
                await conn.execute(
                    "INSERT INTO sales_plans (user_id, month, amount_minor) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    uid,
                    month,
                    50_000_000,
                )
        await conn.execute("ANALYZE")
        return managers
    finally:
        await conn.close()


def _month_before(now: datetime, months: int) -> tuple[date, date]:
    first = now.astimezone(MSK).date().replace(day=1)
    for _ in range(months):
        first = (first - timedelta(days=1)).replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return first, last


@pytest.mark.timeout(1800)  # seeding alone takes a minute or two
async def test_sales_reports_and_routing_at_scale(pg_server: PgServer, redis_url: str) -> None:
    now = datetime.now(UTC)
    async with bench_database(pg_server) as (url, dsn):
        t = time.perf_counter()
        managers = await _seed(dsn, now)
        print(
            f"\nseeded {DEALS:,} deals, {COMMUNICATIONS:,} communications"
            f" in {time.perf_counter() - t:.0f} s"
        )
        async with (
            api_process(url) as server,
            httpx.AsyncClient(base_url=server.base_url + "/api/v1", timeout=60) as http,
        ):
            r = await http.post("/auth/login", json={"username": "bench", "password": PASSWORD})
            r.raise_for_status()
            for name, extra in (
                ("manager-daily", {}),
                ("lead-sources", {}),
                ("managers-sales", {}),
                ("funnel", {}),
                ("analytics", {"bucket": "week"}),
            ):
                samples = []
                for i in range(REQUESTS + 5):
                    first, last = _month_before(now, 1 + i % 10)
                    params = {"start": first.isoformat(), "end": last.isoformat(), **extra}
                    t = time.perf_counter()
                    r = await http.get(f"/reports/{name}", params=params)
                    took = time.perf_counter() - t
                    assert r.status_code == 200, r.text
                    assert r.json()["rows"], name
                    if i >= 5:  # warm-up
                        samples.append(took)
                report(f"report {name} (1 month, all)", samples, 300)

        # Routing: the pure decision, then the entry point on this database and Redis.
        agents = [Agent(uid, str(300 + i), busy=i % 4 == 0) for i, uid in enumerate(managers)]
        samples = []
        for i in range(ROUTES):
            t = time.perf_counter()
            decide(
                agents,
                owner_id=managers[i % MANAGERS],
                tried=frozenset(),
                turn=i,
                fallback="queue:sales",
            )
            samples.append(time.perf_counter() - t)
        report("routing decision (pure)", samples, 2)
        engine = make_engine(url)
        redis = Redis.from_url(redis_url)
        try:
            sessions = make_sessionmaker(engine)
            samples = []
            rng = random.Random(3)
            for i in range(ROUTES + 50):
                caller = "+7916" + f"{rng.randint(0, 9_999_999):07d}"
                t = time.perf_counter()
                d = await choose_extension(
                    engine,
                    sessions,
                    redis,
                    caller=caller,
                    did="74950000000",
                    pbx="pbx",
                    call_id=f"bench-{now.timestamp()}-{i}",
                    now=datetime.now(UTC),
                    tz=MSK,
                    region="RU",
                    fallback="queue:sales",
                )
                took = time.perf_counter() - t
                assert d.extension is not None
                if i >= 50:
                    samples.append(took)
            report("routing entry point (PG + Redis)", samples, 2)
        finally:
            await redis.aclose()
            await engine.dispose()
