"""Migrations upgrade an empty database to head and downgrade back, on both engines, and
the schema they make is the one the models describe (no column drift)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from support.servers import PgServer

from crm_api.models import Base
from crm_api.platform.db.migrate import downgrade, upgrade
from crm_api.platform.db.session import make_engine


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _round_trip(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        tables = await _tables(engine)
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        await downgrade(engine, "base")
        assert await _tables(engine) <= {"alembic_version"}
        await upgrade(engine)  # and up again after a downgrade
        assert {t.name for t in Base.metadata.sorted_tables} <= await _tables(engine)
    finally:
        await engine.dispose()


def _pg_only_search_index(obj: object, name: str | None, type_: str, *_: object) -> bool:
    """Trigram (GIN) search indexes exist on PostgreSQL alone, made by the migration."""
    return not (type_ == "index" and name is not None and name.endswith("_trgm"))


async def _drift(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(
                        c, opts={"compare_type": True, "include_object": _pg_only_search_index}
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()


async def test_sqlite_upgrade_downgrade(tmp_path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@contextlib.asynccontextmanager
async def _empty_pg_database(pg_server: PgServer) -> AsyncIterator[str]:
    name = f"callcard_mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_server.dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.url(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.postgres
async def test_postgres_upgrade_downgrade(pg_server: PgServer) -> None:
    async with _empty_pg_database(pg_server) as url:
        await _round_trip(url)


async def test_sqlite_migrated_schema_is_the_models(tmp_path) -> None:
    assert await _drift(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}") == []


async def test_the_drift_check_sees_a_column_the_migrations_lack(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE clients DROP COLUMN address")
    finally:
        await engine.dispose()
    diff = await _drift(url)
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "address")]


@pytest.mark.postgres
async def test_postgres_migrated_schema_is_the_models(pg_server: PgServer) -> None:
    async with _empty_pg_database(pg_server) as url:
        assert await _drift(url) == []


async def test_stale_deal_tasks_lose_their_english_title(tmp_path) -> None:
    """Stale-deal tasks written as English prose become a kind and parameters (0008)."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await upgrade(engine, "0007_call_participants")
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO users (id, username, full_name, password_hash, role, language,"
                " is_active, created_at) VALUES (1, 'm', 'M', 'x', 'manager', 'ru', 1,"
                " '2026-12-01')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO tasks (id, title, assignee_id, source, created_at) VALUES"
                " (1, 'Deal idle for 7 days: Поставка кофе', 1, 'stale_deal', '2026-12-01'),"
                " (2, 'Позвонить', 1, 'manual', '2026-12-01')"
            )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.exec_driver_sql("SELECT id, title, kind, params FROM tasks ORDER BY id")
            ).all()
    finally:
        await engine.dispose()
    assert [(i, title, kind, params and json.loads(params)) for i, title, kind, params in rows] == [
        (1, "Поставка кофе", "stale_deal", {"deal": "Поставка кофе", "days": 7}),
        (2, "Позвонить", None, None),
    ]


async def _old_call_with_children(url: str) -> None:
    """At 0008: a call (the Linkedid of the issue), its recording and its participant."""
    engine = make_engine(url)
    try:
        await upgrade(engine, "0008_stale_deal_kind")
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO users (id, username, full_name, password_hash, role, language,"
                " is_active, created_at) VALUES (1, 'm', 'M', 'x', 'manager', 'ru', true,"
                " '2026-12-01')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO calls (id, pbx_call_id, direction, state, ringing, agents,"
                " started_at) VALUES (1, '1796221899.2096', 'inbound', 'ended', '[]', '[]',"
                " '2026-12-01')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO recordings (id, call_id, pbx_path, file_name, created_at)"
                " VALUES (1, 1, '/spool/a.wav', 'a.wav', '2026-12-01')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO call_participants (call_id, user_id, extension) VALUES (1, 1, '101')"
            )
        await upgrade(engine)
        async with engine.begin() as conn:
            rows = await conn.exec_driver_sql("SELECT id, pbx, pbx_call_id FROM calls")
            assert rows.all() == [(1, "pbx", "1796221899.2096")]
            for child in ("recordings", "call_participants"):
                found = await conn.exec_driver_sql(f"SELECT count(*) FROM {child}")
                assert found.scalar() == 1, child
            # Another PBX's call may have the id; the same PBX's may not.
            await conn.exec_driver_sql(
                "INSERT INTO calls (id, pbx, pbx_call_id, direction, state, ringing, agents,"
                " started_at) VALUES (2, 'office-b', '1796221899.2096', 'inbound', 'ended',"
                " '[]', '[]', '2026-12-01')"
            )
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.exec_driver_sql(
                    "INSERT INTO calls (id, pbx, pbx_call_id, direction, state, ringing,"
                    " agents, started_at) VALUES (3, 'pbx', '1796221899.2096', 'inbound',"
                    " 'ended', '[]', '[]', '2026-12-01')"
                )
    finally:
        await engine.dispose()


async def test_old_calls_go_under_the_default_pbx_and_keep_their_children_sqlite(
    tmp_path,
) -> None:
    """0009 on SQLite copies `calls` into a new table: its recordings and participants
    are not dropped with the old one."""
    await _old_call_with_children(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_old_calls_go_under_the_default_pbx_postgres(pg_server: PgServer) -> None:
    async with _empty_pg_database(pg_server) as url:
        await _old_call_with_children(url)


async def _old_route_ask(url: str) -> None:
    """At 0009: an offer for a call (an Asterisk Uniqueid, which other PBXs reuse)."""
    engine = make_engine(url)
    try:
        await upgrade(engine, "0009_call_pbx")
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO route_asks (id, call_id, user_id, attempt, asked_at)"
                " VALUES (1, '1733150000.12', NULL, 1, '2026-12-01')"
            )
        await upgrade(engine)
        async with engine.begin() as conn:
            rows = await conn.exec_driver_sql("SELECT id, pbx, call_id, attempt FROM route_asks")
            assert rows.all() == [(1, "pbx", "1733150000.12", 1)]
            # Another PBX's call may have the id and its own first attempt; the same PBX's not.
            await conn.exec_driver_sql(
                "INSERT INTO route_asks (id, pbx, call_id, user_id, attempt, asked_at)"
                " VALUES (2, 'office-b', '1733150000.12', NULL, 1, '2026-12-01')"
            )
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.exec_driver_sql(
                    "INSERT INTO route_asks (id, pbx, call_id, user_id, attempt, asked_at)"
                    " VALUES (3, 'pbx', '1733150000.12', NULL, 1, '2026-12-01')"
                )
    finally:
        await engine.dispose()


async def test_old_route_asks_go_under_the_default_pbx_sqlite(tmp_path) -> None:
    await _old_route_ask(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_old_route_asks_go_under_the_default_pbx_postgres(pg_server: PgServer) -> None:
    async with _empty_pg_database(pg_server) as url:
        await _old_route_ask(url)


async def _old_phone_labels(url: str) -> list[tuple[int, str | None]]:
    """Phones labelled at 0010 as the demo and the card's free-text field wrote them, then
    migrated to head: (id, label) in order."""
    engine = make_engine(url)
    try:
        await upgrade(engine, "0010_route_ask_pbx")
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO clients (id, kind, name, search_name, dates, custom_fields,"
                " sms_opted_out, created_at, updated_at) VALUES (1, 'person', 'Анна', 'анна',"
                " '[]', '{}', false, '2026-12-01', '2026-12-01')"
            )
            labels = ["мобильный", "Рабочий ", "домашний", "мобильный", "Секретарь", None, "work"]
            await conn.execute(
                text(
                    "INSERT INTO client_phones (id, client_id, e164, digits, raw, label, position)"
                    " VALUES (:id, 1, :e164, :digits, :digits, :label, :id)"
                ),
                [
                    {
                        "id": i,
                        "e164": f"+792600000{i:02}",
                        "digits": f"792600000{i:02}",
                        "label": label,
                    }
                    for i, label in enumerate(labels, start=1)
                ],
            )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql("SELECT id, label FROM client_phones ORDER BY id")
            return [(i, label) for i, label in rows.all()]
    finally:
        await engine.dispose()


EXPECTED_KINDS = [
    (1, "mobile"),
    (2, "work"),
    (3, "home"),
    (4, "mobile"),
    (5, "Секретарь"),  # the user's own words stay as typed
    (6, None),
    (7, "work"),
]


async def test_russian_phone_labels_become_kinds_sqlite(tmp_path) -> None:
    """0011: SQLite's lower() leaves Cyrillic as it is, so "Рабочий " is matched in Python."""
    assert await _old_phone_labels(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}") == EXPECTED_KINDS


@pytest.mark.postgres
async def test_russian_phone_labels_become_kinds_postgres(pg_server: PgServer) -> None:
    async with _empty_pg_database(pg_server) as url:
        assert await _old_phone_labels(url) == EXPECTED_KINDS


async def _old_recording(url: str) -> None:
    """A recording with its size at 0011 is kept at head without it, and a downgrade gives
    the column back empty."""
    engine = make_engine(url)
    try:
        await upgrade(engine, "0011_phone_label_kinds")
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO calls (id, pbx, pbx_call_id, direction, state, ringing, agents,"
                " started_at) VALUES (1, 'pbx', '1796221899.2096', 'inbound', 'ended', '[]',"
                " '[]', '2026-12-01')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO recordings (id, call_id, pbx_path, file_name, size, created_at)"
                " VALUES (1, 1, '/spool/a.wav', 'a.wav', 48044, '2026-12-01')"
            )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql("SELECT * FROM recordings")
            assert list(rows.keys()) == ["id", "call_id", "pbx_path", "file_name", "created_at"]
            assert [row[:4] for row in rows.all()] == [(1, 1, "/spool/a.wav", "a.wav")]
        await downgrade(engine, "0011_phone_label_kinds")
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql("SELECT id, size FROM recordings")
            assert rows.all() == [(1, None)]
    finally:
        await engine.dispose()


async def test_recordings_keep_their_rows_when_their_size_goes_sqlite(tmp_path) -> None:
    """0012 on SQLite copies `recordings` into a new table without the column."""
    await _old_recording(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_recordings_keep_their_rows_when_their_size_goes_postgres(
    pg_server: PgServer,
) -> None:
    async with _empty_pg_database(pg_server) as url:
        await _old_recording(url)
