"""SMS throughput: sustained submit_sm/s through the whole path with every delivery
receipt persisted, window 50, PostgreSQL. Target: >= 1000 messages/s. Side by side in
the same run, the same batch from a bare smpplib client (the reference: goal >= 60% of
its rate) and through Jasmin's HTTP API, to the same SMSC.

Callcard: N outbox messages (already queued, as the API leaves them) are claimed,
submitted to a test SMSC (smpp34's Server in its own process), their parts recorded, and
each receipt written before it is acknowledged. The clock stops when the last message is
delivered.

The bare client (bench/bare_smpp.py, its own process) sends with the same window and
counts the receipts smpplib answers; it stores nothing.

Jasmin 0.11.0 (its own venv var/jasmin-venv, made on first use; setup in
bench/jasmin_peer.py): once Callcard has unbound, jasmind binds to the same SMSC and the
same N messages go through GET /send with 50 requests in flight (matching window 50),
each asking for a terminal receipt POSTed to a receiver in the benchmark. The clock runs
from the first request to the last receipt received. If Jasmin cannot be installed or
started, the line says why and Callcard's figure stands alone.

Prints messages/s to submitted and to delivered for both."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from bench.jasmin_peer import VERSION, JasminRun, JasminUnavailable, run_batch
from bench.seeding import CLIENT_COLUMNS, bench_database
from sqlalchemy import func, select
from support.children import dies_with_us
from support.servers import PgServer
from support.smsc import SmscProcess

from crm_api.messages.models import OutboxMessage
from crm_api.messages.sms.service import SmsService
from crm_api.platform.db.session import make_engine, make_sessionmaker
from crm_api.platform.realtime.bus import InProcessBus
from crm_api.platform.realtime.hub import Hub
from sms_gateway import SmppConfig, SmsGateway

MESSAGES = int(os.environ.get("BENCH_SMS_MESSAGES", "20000"))
WINDOW = 50
TARGET = 1000.0
BARE_SHARE = 0.6  # of the bare smpplib client's rate
CPU_TARGET_MS = 0.5


def destination(i: int) -> str:
    return f"+7926{i:07d}"


def text(i: int) -> str:
    return f"Ваш код {i:06d}"


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
                    text(i),
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
                (i, "sms", i, i, destination(i), text(i), "queued", 0, now, "[]", now)
                for i in range(1, n + 1)
            ],
        )
    finally:
        await conn.close()


async def test_sms_submit_and_receipts_sustained_rate(tmp_path: Path, pg_server: PgServer) -> None:
    smsc = SmscProcess(tmp_path / "smsc.jsonl", "--dlr-workers", "200")
    await smsc.start()
    try:
        async with bench_database(pg_server) as (url, dsn):
            submitted_s, delivered_s, cpu = await _callcard(url, dsn, smsc)
        accepted = len(smsc.rows("submit"))
        receipts = len(smsc.rows("dlr"))
        rate = MESSAGES / delivered_s
        mark = "ok" if rate >= TARGET else "UNDER TARGET"
        print(
            f"\nSMS, window {WINDOW}, PostgreSQL: {MESSAGES} messages; "
            f"submitted {MESSAGES / submitted_s:,.0f}/s, "
            f"delivered with every receipt stored {rate:,.0f}/s "
            f"(target >= {TARGET:g}/s: {mark}); SMSC accepted {accepted}, "
            f"receipts acked {receipts}; Callcard process CPU {cpu * 1000 / MESSAGES:.2f} ms "
            f"per message (one free core: ~{MESSAGES / cpu:,.0f}/s); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        bare = await _bare(smsc)
        bare_rate = MESSAGES / bare["delivered_s"]
        share = rate / bare_rate
        cpu_ms = cpu * 1000 / MESSAGES
        print(
            f"Bare smpplib {_smpplib_version()}, window {WINDOW}, same SMSC: "
            f"submitted {MESSAGES / bare['submitted_s']:,.0f}/s, "
            f"every receipt received {bare_rate:,.0f}/s, accepted {bare['accepted']:.0f}, "
            f"receipts {bare['receipts']:.0f}; CPU {bare['cpu_s'] * 1000 / MESSAGES:.2f} ms "
            f"per message; load average {os.getloadavg()[0]:.1f}\n"
            f"Callcard / bare smpplib: {share:.0%} "
            f"(goal >= {BARE_SHARE:.0%}: {'ok' if share >= BARE_SHARE else 'UNDER GOAL'}); "
            f"Callcard CPU {cpu_ms:.3f} ms per message "
            f"(goal <= {CPU_TARGET_MS} ms: {'ok' if cpu_ms <= CPU_TARGET_MS else 'OVER GOAL'})"
        )
        before_jasmin = len(smsc.rows("submit"))
        jasmin = await _jasmin(smsc, tmp_path / "jasmin")
    finally:
        await smsc.kill()
    print(_jasmin_line(jasmin, len(smsc.rows("submit")) - before_jasmin))
    if isinstance(jasmin, JasminRun):
        print(
            f"Side by side, {MESSAGES} messages each, same SMSC: Callcard {rate:,.0f}/s, "
            f"Jasmin {MESSAGES / jasmin.delivered_s:,.0f}/s (first submit to last receipt)"
        )
    assert accepted == MESSAGES


async def _callcard(url: str, dsn: str, smsc: SmscProcess) -> tuple[float, float, float]:
    """Seconds to all submitted, to all delivered, and this process's CPU seconds."""
    engine = make_engine(url)
    try:
        await _seed(dsn, MESSAGES)
        sessions = make_sessionmaker(engine)
        hub = Hub(InProcessBus())
        await hub.start()
        gateway = SmsGateway(SmppConfig.from_url(smsc.url, window=WINDOW))
        await gateway.start()
        assert await gateway.wait_bound(10), gateway.last_error
        service = SmsService(sessions, hub, gateway, region="RU", max_in_flight=WINDOW * 20)
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
        await engine.dispose()
    assert submitted_at is not None and delivered_at is not None
    return submitted_at - started, delivered_at - started, cpu


async def _bare(smsc: SmscProcess) -> dict[str, float]:
    """The bare smpplib client's run of the same batch (its own process)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("bare_smpp.py")),
        "--port",
        str(smsc.port),
        "--password",
        smsc.password,
        "--count",
        str(MESSAGES),
        "--window",
        str(WINDOW),
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=dies_with_us(),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 900)
    assert proc.returncode == 0, out
    return dict(json.loads(out))


def _smpplib_version() -> str:
    from importlib.metadata import version

    return version("smpplib")


async def _jasmin(smsc: SmscProcess, workdir: Path) -> JasminRun | str:
    """Jasmin's run of the same batch, or why there is none."""
    batch = [(destination(i).lstrip("+"), text(i)) for i in range(1, MESSAGES + 1)]
    try:
        return await run_batch(smsc.port, smsc.password, batch, WINDOW, workdir)
    except JasminUnavailable as e:
        return str(e)
    except (OSError, httpx.HTTPError) as e:  # jasmind or one of its peers went away mid-run
        return f"{type(e).__name__}: {e}"


def _jasmin_line(run: JasminRun | str, smsc_accepted: int) -> str:
    if isinstance(run, str):
        return f"Jasmin: unavailable: {run}"
    refused = f" (first refusals: {'; '.join(run.refused)})" if run.refused else ""
    return (
        f"Jasmin {VERSION}, HTTP API, {WINDOW} requests in flight, same SMSC: "
        f"{MESSAGES} messages, /send accepted {run.accepted}{refused}; "
        f"submitted {MESSAGES / run.submitted_s:,.0f}/s, "
        f"delivered with every receipt received by the benchmark's HTTP receiver "
        f"(persisted = received there) {MESSAGES / run.delivered_s:,.0f}/s; "
        f"SMSC accepted {smsc_accepted}, receipts received {run.receipts}/{run.accepted} "
        f"({run.early_receipts} lookups retried after 1 s: receipt before the id was stored); "
        f"jasmind CPU {run.cpu_s * 1000 / MESSAGES:.2f} ms per message "
        f"(one free core: ~{MESSAGES / run.cpu_s:,.0f}/s); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
