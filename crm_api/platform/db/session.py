"""The engine and the session factory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Insert, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from crm_api.platform.db.direct import Queryable, dialect_of


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # No pre-ping (a round trip per checkout): after a database restart the first failing
    # query invalidates the whole pool, and the call-event stream retries its event.
    return create_async_engine(url, pool_size=10, max_overflow=20, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_autocommit_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every statement commits on its own: no BEGIN and COMMIT (or ROLLBACK)
    round trips, for work whose statements each stand alone."""
    return make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read (autocommit): no weaker a view than READ
    COMMITTED gives a transaction (a snapshot per statement). Never write through one."""
    return make_autocommit_sessionmaker(engine)


class InsertNew:
    """`INSERT ... ON CONFLICT (the key) DO NOTHING`, returning the row written (none when
    the key was there), built once for each dialect: one statement where a look first and
    an INSERT would be two. Of the table, not the entity: the ORM's bulk-insert path costs
    more than the INSERT."""

    def __init__(
        self,
        table: Table,
        key: Sequence[str],
        values: Mapping[str, Any] | None = None,
        also: Sequence[ColumnElement[Any]] = (),
    ) -> None:
        """`values`: the columns' parameters, when not named after the columns; `also`:
        more to return with the row, read as it is written."""
        self._by_dialect: dict[bool, Insert] = {}
        for postgres in (False, True):
            insert = (postgresql if postgres else sqlite).insert(table)
            if values is not None:
                insert = insert.values(dict(values))
            conflict = insert.on_conflict_do_nothing(index_elements=list(key))
            self._by_dialect[postgres] = conflict.returning(*table.c, *also)

    def on(self, db: Queryable) -> Insert:
        """The statement in the dialect of the database `db` is on."""
        return self._by_dialect[dialect_of(db).name == "postgresql"]
