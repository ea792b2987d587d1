"""Seeds a benchmark database straight through COPY: 1,000,000 clients with distinct
Russian mobile numbers, a supervisor `bench`, and long timelines on some cards."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from support.factories import _HASH
from support.servers import PgServer

from crm_api.platform.db.migrate import upgrade_url

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "1000000"))
WITH_HISTORY = 20_000  # cards with a long timeline (30 communications each)
# The columns every benchmark fills when it copies clients in (the rest have defaults).
CLIENT_COLUMNS = [
    "id",
    "kind",
    "name",
    "search_name",
    "dates",
    "custom_fields",
    "sms_opted_out",
    "created_at",
    "updated_at",
]
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов"]
NAMES = ["Александр", "Дмитрий", "Мария", "Анна", "Сергей", "Елена", "Ольга", "Иван"]


def number(i: int) -> str:
    # 1,000,000 distinct Russian mobile numbers spread over ten operator codes.
    code = 900 + (i % 10) * 3 + 1
    return f"+7{code}{(i * 7919) % 10_000_000:07d}"


async def seed_clients(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (username, full_name, password_hash, role, language, is_active,"
            " created_at) VALUES ('bench', 'Bench', $1, 'supervisor', 'ru', true, $2) RETURNING id",
            _HASH,
            now,
        )
        rng = random.Random(1)
        batch = 100_000
        for start in range(0, CLIENTS, batch):
            ids = range(start + 1, min(start + batch, CLIENTS) + 1)
            names = [f"{rng.choice(SURNAMES)} {rng.choice(NAMES)} {i}" for i in ids]
            await conn.copy_records_to_table(
                "clients",
                columns=[*CLIENT_COLUMNS, "manager_id"],
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
                records=[(i, i, number(i), number(i)[1:], number(i), 0) for i in ids],
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


@asynccontextmanager
async def bench_database(server: PgServer) -> AsyncIterator[tuple[str, str]]:
    """A fresh migrated PostgreSQL database: (SQLAlchemy URL, asyncpg DSN); dropped after."""
    name = f"callcard_bench_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(server.dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.url(name)
        await asyncio.to_thread(upgrade_url, url)
        yield url, server.dsn(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
