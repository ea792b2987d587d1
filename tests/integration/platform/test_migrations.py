"""Migrations upgrade an empty database to head and downgrade back, on both engines."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import inspect
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


async def test_sqlite_upgrade_downgrade(tmp_path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_postgres_upgrade_downgrade(pg_server: PgServer) -> None:
    name = f"callcard_mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_server.dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await _round_trip(pg_server.url(name))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
