"""1,000,000 clients in PostgreSQL, measured through the HTTP API: exact phone lookup,
card fetch with the last 20 communications, phone-fragment search. Prints p50/p99.

Targets (issue "The Callcard core"): p99 ≤ 2 ms, ≤ 10 ms, ≤ 50 ms."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from support.factories import PASSWORD
from support.peers import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER, missing, port_open
from support.server import api_process

from crm_api.db.migrate import upgrade_url

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "1000000"))
WITH_HISTORY = 20_000  # cards with a long timeline (30 communications each)
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1000"))
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов"]
NAMES = ["Александр", "Дмитрий", "Мария", "Анна", "Сергей", "Елена", "Ольга", "Иван"]


def _number(i: int) -> str:
    # 1,000,000 distinct Russian mobile numbers spread over ten operator codes.
    code = 900 + (i % 10) * 3 + 1
    return f"+7{code}{(i * 7919) % 10_000_000:07d}"


async def _seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (username, full_name, password_hash, role, language, is_active,"
            " created_at) VALUES ('bench', 'Bench', $1, 'supervisor', 'ru', true, $2) RETURNING id",
            __import__("support.factories", fromlist=["_HASH"])._HASH,
            now,
        )
        rng = random.Random(1)
        batch = 100_000
        for start in range(0, CLIENTS, batch):
            ids = range(start + 1, min(start + batch, CLIENTS) + 1)
            names = [f"{rng.choice(SURNAMES)} {rng.choice(NAMES)} {i}" for i in ids]
            await conn.copy_records_to_table(
                "clients",
                columns=[
                    "id",
                    "kind",
                    "name",
                    "search_name",
                    "dates",
                    "custom_fields",
                    "sms_opted_out",
                    "created_at",
                    "updated_at",
                    "manager_id",
                ],
                records=[
                    (
                        i,
                        "person",
                        n,
                        n.casefold(),
                        "[]",
                        "{}",
                        False,
                        now,
                        now,
                        user_id if i % 3 == 0 else None,
                    )
                    for i, n in zip(ids, names, strict=True)
                ],
            )
            await conn.copy_records_to_table(
                "client_phones",
                columns=["id", "client_id", "e164", "digits", "raw", "position"],
                records=[(i, i, _number(i), _number(i)[1:], _number(i), 0) for i in ids],
            )
        await conn.execute("SELECT setval('clients_id_seq', $1)", CLIENTS)
        await conn.execute("SELECT setval('client_phones_id_seq', $1)", CLIENTS)
        comm_rows = []
        for c in range(1, WITH_HISTORY + 1):
            client_id = c * (CLIENTS // WITH_HISTORY)
            for k in range(30):
                comm_rows.append(
                    (
                        client_id,
                        "note" if k % 2 else "call",
                        "done",
                        user_id,
                        now - timedelta(hours=k),
                        f"Запись {k}",
                        "{}",
                        now,
                    )
                )
        await conn.copy_records_to_table(
            "communications",
            columns=[
                "client_id",
                "kind",
                "status",
                "user_id",
                "occurred_at",
                "body",
                "details",
                "created_at",
            ],
            records=comm_rows,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _report(name: str, samples: list[float], target_ms: float) -> None:
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[int(len(samples) * 0.99) - 1] * 1000
    mark = "ok" if p99 <= target_ms else "OVER TARGET"
    print(
        f"{name:<32} n={len(samples):<5} p50={p50:6.2f} ms  p99={p99:6.2f} ms  "
        f"(target p99 ≤ {target_ms:g} ms: {mark})"
    )


async def _measure(http: httpx.AsyncClient, paths: list[str]) -> list[float]:
    for p in paths[:50]:  # warm-up
        (await http.get(p)).raise_for_status()
    samples = []
    for p in paths:
        t = time.perf_counter()
        r = await http.get(p)
        samples.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    return samples


async def test_core_api_with_a_million_clients() -> None:
    if not port_open(PG_HOST, PG_PORT):
        missing("PostgreSQL", "the benchmark needs it")
    name = f"callcard_bench_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_ADMIN_DB}")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        await asyncio.to_thread(upgrade_url, url)
        t = time.perf_counter()
        await _seed(f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
        print(f"\nseeded {CLIENTS:,} clients in {time.perf_counter() - t:.0f} s")
        async with (
            api_process(url) as base_url,
            httpx.AsyncClient(base_url=base_url + "/api/v1", timeout=30) as http,
        ):
            r = await http.post("/auth/login", json={"username": "bench", "password": PASSWORD})
            r.raise_for_status()
            rng = random.Random(7)
            picks = [rng.randint(1, CLIENTS) for _ in range(REQUESTS)]
            forms = ["8 {a} {b}-{c}-{d}", "+7 ({a}) {b}-{c}-{d}", "{a}{b}{c}{d}"]
            lookups = []
            for i in picks:
                n = _number(i)[2:]
                form = rng.choice(forms).format(a=n[:3], b=n[3:6], c=n[6:8], d=n[8:])
                lookups.append(f"/clients/lookup?phone={httpx.QueryParams({'p': form})['p']}")
            _report("exact phone lookup", await _measure(http, lookups), 2)
            cards = [
                f"/clients/{c * (CLIENTS // WITH_HISTORY)}/card"
                for c in (rng.randint(1, WITH_HISTORY) for _ in range(REQUESTS))
            ]
            _report("card + last 20 communications", await _measure(http, cards), 10)
            fragments = [f"/clients?q={_number(i)[-7:]}&page_size=25" for i in picks]
            _report("phone fragment search (7 digits)", await _measure(http, fragments), 50)
            short = [f"/clients?q={_number(i)[-5:]}&page_size=25" for i in picks[: REQUESTS // 4]]
            _report("phone fragment search (5 digits)", await _measure(http, short), 50)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
