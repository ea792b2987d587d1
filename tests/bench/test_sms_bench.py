"""SMS throughput: sustained submit_sm/s through the whole path with every delivery
receipt persisted, window 50, PostgreSQL. Target: >= 1000 messages/s.

N outbox messages (already queued, as the API leaves them) are claimed, submitted to a
test SMSC (smpp34's Server in its own process), their parts recorded, and each receipt
written before it is acknowledged. The clock stops when the last message is delivered.
Prints messages/s to submitted and to delivered."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from bench.seeding import CLIENT_COLUMNS, bench_database
from sqlalchemy import func, select
from support.smsc import SmscProcess

from crm_api.db.outbox import OutboxMessage
from crm_api.db.session import make_engine, make_sessionmaker
from crm_api.realtime.bus import InProcessBus
from crm_api.realtime.hub import Hub
from crm_api.sms.service import SmsService
from sms_gateway import SmppConfig, SmsGateway

MESSAGES = int(os.environ.get("BENCH_SMS_MESSAGES", "20000"))
WINDOW = 50
TARGET = 1000.0


async def _seed(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    try:
        await conn.copy_records_to_table(
            "clients",
            columns=[*CLIENT_COLUMNS],
            records=[
                (i, "person", f"Клиент {i}", f"клиент {i}", "[]", "{}", False, now, now)
                for i in range(1, n + 1)
            ],
        )
        await conn.copy_records_to_table(
            "communications",
            columns=[
                "id",
                "client_id",
                "kind",
                "direction",
                "status",
                "occurred_at",
                "body",
                "details",
                "external_id",
                "created_at",
            ],
            records=[
                (
                    i,
                    i,
                    "sms",
                    "outbound",
                    "queued",
                    now,
                    f"Ваш код {i:06d}",
                    "{}",
                    f"outbox:{i}",
                    now,
                )
                for i in range(1, n + 1)
            ],
        )
        await conn.copy_records_to_table(
            "outbox_messages",
            columns=[
                "id",
                "channel",
                "client_id",
                "communication_id",
                "to_address",
                "body",
                "status",
                "attempts",
                "next_attempt_at",
                "parts",
                "created_at",
            ],
            records=[
                (i, "sms", i, i, f"+7926{i:07d}", f"Ваш код {i:06d}", "queued", 0, now, "[]", now)
                for i in range(1, n + 1)
            ],
        )
    finally:
        await conn.close()


async def test_sms_submit_and_receipts_sustained_rate(tmp_path: Path) -> None:
    async with bench_database() as (url, dsn):
        await _run(url, dsn, tmp_path)


async def _run(url: str, dsn: str, tmp_path: Path) -> None:
    smsc = SmscProcess(tmp_path / "smsc.jsonl", "--dlr-workers", "200")
    engine = make_engine(url)
    try:
        await _seed(dsn, MESSAGES)
        await smsc.start()
        sessions = make_sessionmaker(engine)
        hub = Hub(InProcessBus())
        await hub.start()
        gateway = SmsGateway(SmppConfig.from_url(smsc.url, window=WINDOW))
        await gateway.start()
        assert await gateway.wait_bound(10), gateway.last_error
        service = SmsService(sessions, hub, gateway, region="RU", max_in_flight=WINDOW * 4)
        stop = asyncio.Event()
        started = time.perf_counter()
        cpu_started = time.process_time()
        task = asyncio.create_task(service.run(stop))
        submitted_at = delivered_at = None
        while delivered_at is None:
            await asyncio.sleep(0.25)
            async with sessions() as session:
                counts = dict(
                    (
                        await session.execute(
                            select(OutboxMessage.status, func.count()).group_by(
                                OutboxMessage.status
                            )
                        )
                    ).all()
                )
            if (
                submitted_at is None
                and counts.get("submitted", 0) + counts.get("delivered", 0) == MESSAGES
            ):
                submitted_at = time.perf_counter()
            if counts.get("delivered", 0) == MESSAGES:
                delivered_at = time.perf_counter()
                submitted_at = submitted_at or delivered_at
            assert time.perf_counter() - started < 600, counts
        cpu = time.process_time() - cpu_started
        stop.set()
        await task
        await gateway.stop()
        await hub.stop()
    finally:
        await smsc.kill()
        await engine.dispose()
    assert submitted_at is not None and delivered_at is not None
    submit_rate = MESSAGES / (submitted_at - started)
    rate = MESSAGES / (delivered_at - started)
    accepted = len(smsc.rows("submit"))
    receipts = len(smsc.rows("dlr"))
    mark = "ok" if rate >= TARGET else "UNDER TARGET"
    print(
        f"\nSMS, window {WINDOW}, PostgreSQL: {MESSAGES} messages; "
        f"submitted {submit_rate:,.0f}/s, delivered with every receipt stored {rate:,.0f}/s "
        f"(target >= {TARGET:g}/s: {mark}); SMSC accepted {accepted}, receipts acked {receipts}; "
        f"Callcard process CPU {cpu * 1000 / MESSAGES:.2f} ms per message "
        f"(one free core: ~{MESSAGES / cpu:,.0f}/s); load average {os.getloadavg()[0]:.1f}"
    )
    assert accepted == MESSAGES
