"""Fixtures every test folder may use: the two storage backends (SQLite, and PostgreSQL
with the Redis bus), a running Callcard API on a loopback port, and users of each role."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support.factories import Actor, make_user
from support.peers import missing
from support.server import RunningApi, running_api
from support.servers import PgServer, postgres_server, redis_server
from support.smsc import SmscProcess

from crm_api.accounts.models import Role
from crm_api.clients.directories.models import BUILTIN_LEAD_SOURCES
from crm_api.models import Base
from crm_api.platform.db.migrate import upgrade_url
from crm_api.platform.db.session import make_engine, make_sessionmaker
from crm_api.platform.settings import Settings
from crm_api.sales.models import builtin_stage_rows

BACKENDS = ["sqlite", "postgres"]
KEPT_TABLES = {"lead_sources", "deal_stages"}  # built-in rows the migrations made
T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `first` lead the collection, which `make test` hands out in order
    (--no-loadscope-reorder): the two workers start on the longest files side by side
    instead of one worker ending the run alone on them."""
    items.sort(key=lambda item: item.get_closest_marker("first") is None)


def _outside_loop(fn: Callable[[], T]) -> T:
    """Session fixtures may be first asked for inside a running test loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The run's PostgreSQL: `CALLCARD_TEST_PG_URL`'s, or a throwaway one started here."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head."""
    name = f"callcard_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        _outside_loop(lambda: asyncio.run(admin(f'CREATE DATABASE "{name}"')))
    except (OSError, asyncpg.PostgresError) as exc:
        missing("PostgreSQL", str(exc))
    url = pg_server.url(name)
    _outside_loop(lambda: upgrade_url(url))
    yield url
    _outside_loop(lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The run's Redis: `CALLCARD_TEST_REDIS_URL`'s, or a private server started here."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "callcard.db"
    url = f"sqlite+aiosqlite:///{path}"
    _outside_loop(lambda: upgrade_url(url))
    return url


async def reset_database(url: str) -> None:
    """Empties every table but the built-in directory rows the migrations made."""
    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                others = [t for t in tables if t not in KEPT_TABLES]
                await conn.execute(text(f"TRUNCATE {', '.join(others)} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    if table not in KEPT_TABLES:
                        await conn.execute(text(f"DELETE FROM {table}"))
            await conn.execute(text("DELETE FROM lead_sources WHERE code IS NULL"))
            await conn.execute(text("DELETE FROM deal_stages WHERE code IS NULL"))
            for code, name in BUILTIN_LEAD_SOURCES.items():  # undo renames (the fuzz's)
                await conn.execute(
                    text("UPDATE lead_sources SET name = :name WHERE code = :code"),
                    {"name": name, "code": code},
                )
            for row in builtin_stage_rows():  # undo renames and reorders
                await conn.execute(
                    text(
                        "UPDATE deal_stages SET name = :name, name_ru = :name_ru,"
                        " position = :position, kind = :kind, is_active = :is_active"
                        " WHERE code = :code"
                    ),
                    row,
                )
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for the backend under test, on an emptied database."""
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        bus_url = request.getfixturevalue("redis_url")
        client = redis.asyncio.Redis.from_url(bus_url)
        await client.flushdb()
        await client.aclose()
    else:
        url = request.getfixturevalue("sqlite_url")
        bus_url = None
    await reset_database(url)
    return Settings(
        database_url=url,
        redis_url=bus_url,
        recordings_dir=tmp_path / "recordings",
        spool_dir=tmp_path / "spool",
        ui_dist=tmp_path / "no-ui",
        seed_demo_on_first_run=False,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def smsc(tmp_path: Path) -> AsyncIterator[SmscProcess]:
    """A real SMPP server (the SMSC peer) for this test."""
    proc = SmscProcess(tmp_path / "smsc.jsonl")
    await proc.start()
    yield proc
    await proc.kill()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[RunningApi]:
    async with running_api(settings) as running:
        yield running


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def actors(db: async_sessionmaker[AsyncSession]) -> dict[Role, Actor]:
    """One user of every role, with an API token each."""
    async with db() as session:
        made = {
            Role.OPERATOR: await make_user(session, Role.OPERATOR, extension="104"),
            Role.MANAGER: await make_user(session, Role.MANAGER, extension="101"),
            Role.SUPERVISOR: await make_user(session, Role.SUPERVISOR, extension="100"),
            Role.ADMIN: await make_user(session, Role.ADMIN),
        }
        await session.commit()
    return made
