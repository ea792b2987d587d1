"""Statements for the hottest paths (the lookup by number, the card, a live call's
events): prebuilt Core statements run straight on one pooled asyncpg connection.

A session's making, connection checkout (with its isolation level set and reset) and
closing, and SQLAlchemy's execution and result machinery around asyncpg's fetch, cost
these paths more CPU than the statements themselves. Here each statement is compiled once
for the dialect, with its parameters' order and the result processors of its columns,
and a use checks out one connection from the engine's own pool. No transaction: asyncpg
commits each statement on its own, as the autocommit sessions do, so a write through one
is a write that stands alone (a guarded UPDATE, an INSERT of its own).

Only PostgreSQL through asyncpg: with another driver (SQLite in `callcard run`) the same
statements run as Core on an autocommit session."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import Executable, Float, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import SelectBase
from sqlalchemy.types import TypeEngine


class _Prepared:
    """A statement compiled once: its SQL, where each parameter goes, and how each column
    is read (the types' own bind and result processors, as SQLAlchemy applies them)."""

    def __init__(self, statement: SelectBase | UpdateBase, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        # A column default SQLAlchemy computes in Python would be sent as NULL here.
        assert not (compiled.insert_prefetch or compiled.update_prefetch), (
            f"give every column with a Python default a value: {statement}"
        )
        self.compiled = compiled
        self.defaults = dict(compiled.params)  # the statement's own values (LIMIT 1...)
        # An IN list (an "expanding" parameter) is rendered for each request's list.
        self.expanding = bool(compiled.post_compile_params or compiled.literal_execute_params)
        state = None if self.expanding else compiled.construct_expanded_state(self.defaults)
        self.sql = state.statement if state else ""
        self.names = list(state.positiontup or ()) if state else []
        self.binds: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.binds[name] = process
        # The columns as SQLAlchemy reads them: its rows' names ("count_1" for an unlabelled
        # count) and its types' processors (enums, aware datetimes).
        columns = compiled._result_columns
        row_type = namedtuple("Row", [column.keyname for column in columns])  # type: ignore[misc]
        self.row: Callable[[Iterable[Any]], Any] = row_type._make
        self.results: list[tuple[int, Callable[[Any], Any]]] = []
        for i, column in enumerate(columns):
            impl = column.type.dialect_impl(dialect)
            process = impl.result_processor(dialect, _wire_type(impl))
            if process is not None:
                self.results.append((i, process))

    def arguments(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL and its positional arguments for these parameters."""
        if self.expanding:
            state = self.compiled.construct_expanded_state(params)
            sql, names = state.statement, state.positiontup or ()
            binds = {**self.binds, **state.processors}  # the IN list's own items too
            given: Mapping[str, Any] = state.parameters
        else:
            sql, names, binds, given = self.sql, self.names, self.binds, params
        defaults = self.defaults
        values = [given[name] if name in given else defaults[name] for name in names]
        if binds:
            for i, name in enumerate(names):
                process = binds.get(name)
                if process is not None:
                    values[i] = process(values[i])
        return sql, values

    def rows(self, records: list[asyncpg.Record]) -> list[Any]:
        make, results = self.row, self.results
        if not results:
            return [make(record) for record in records]
        rows = []
        for record in records:
            values = list(record)
            for i, process in results:
                values[i] = process(values[i])
            rows.append(make(values))
        return rows


def _wire_type(type_: TypeEngine[Any]) -> int | None:
    """The PostgreSQL type (its OID) a column of this type arrives as, for the types whose
    reading depends on it: numbers (float8 for Float, numeric for the other Numerics)."""
    if isinstance(type_, Float):
        return 701
    return 1700 if isinstance(type_, Numeric) else None


class DirectConnection:
    """One pooled asyncpg connection a use runs its statements on, outside any transaction."""

    __slots__ = ("_dialect", "_driver", "_pool", "_pooled")

    def __init__(self, engine: AsyncEngine, pooled: PoolProxiedConnection) -> None:
        self._pool = engine.pool
        self._pooled = pooled
        self._driver: asyncpg.Connection[Any] = pooled.driver_connection
        self._dialect = engine.dialect

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    async def rows(self, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
        """The rows of a statement built once (module level), a SELECT or a write that
        returns its rows: each is compiled on its first use and kept for the life of the
        process."""
        prepared = _prepared(statement, self._dialect)
        sql, values = prepared.arguments(params)
        try:
            records = await self._driver.fetch(sql, *values)
        except asyncio.CancelledError:
            # Cancelled mid-query, the connection may be mid-protocol: it goes back to nobody
            # (as SQLAlchemy does with a connection a cancellation left).
            self._pooled.invalidate()
            raise
        except Exception as exc:
            if self._driver.is_closed() or isinstance(exc, _LOST):
                # The server went away: as SQLAlchemy does on a disconnect, every connection
                # of the pool made before now is replaced at its next checkout.
                self._pool._invalidate(self._pooled, exc)
            raise
        return prepared.rows(records)


_PREPARED: dict[int, tuple[Executable, _Prepared]] = {}


def _prepared(statement: Executable, dialect: Dialect) -> _Prepared:
    prepared = _PREPARED.get(id(statement))
    if prepared is None or prepared[0] is not statement:
        assert isinstance(statement, SelectBase | UpdateBase), statement
        prepared = _PREPARED[id(statement)] = (statement, _Prepared(statement, dialect))
    return prepared[1]


def compile_ahead(engine: AsyncEngine, statements: Iterable[Executable]) -> None:
    """Compiles these statements for direct connections now, not at their first use: a big
    one (the pop's card) takes tens of ms, during which the process serves nothing."""
    if engine.dialect.driver == "asyncpg":
        for statement in statements:
            _prepared(statement, engine.dialect)


_LOST = (asyncpg.PostgresConnectionError, OSError)
# What the services on these paths take: a direct connection, or any session (in its
# transaction).
Queryable = AsyncSession | DirectConnection


def dialect_of(db: Queryable) -> Dialect:
    return db.dialect if isinstance(db, DirectConnection) else db.get_bind().dialect


@asynccontextmanager
async def connect_direct(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], *, transaction: bool = False
) -> AsyncIterator[Queryable]:
    """A direct connection on PostgreSQL, its statements in one transaction if
    `transaction` (committed at the end, rolled back by an exception); elsewhere a session
    from `sessions` (autocommit ones for a use that writes without a transaction), which
    the use commits."""
    if engine.dialect.driver != "asyncpg":
        async with sessions() as session:
            yield session
        return
    pooled = await _checkout(engine)
    try:
        conn = DirectConnection(engine, pooled)
        if not transaction:
            yield conn
            return
        driver: asyncpg.Connection[Any] = pooled.driver_connection
        begun = driver.transaction()
        await begun.start()
        try:
            yield conn
        except asyncio.CancelledError:
            # No round trip while cancelled: the server rolls back what it loses the
            # connection of (a statement cancelled has dropped it already).
            if pooled.is_valid:
                pooled.invalidate()
            raise
        except BaseException:
            if not driver.is_closed():
                await begun.rollback()
            raise
        await begun.commit()
    finally:
        pooled.close()


async def _checkout(engine: AsyncEngine) -> PoolProxiedConnection:
    """A connection from the engine's pool. `AsyncEngine.raw_connection` spawns a greenlet
    for every checkout (its frame stack mapped and unmapped each time: ~10% of the lookup's
    CPU) for the I/O of making a connection; handing out an idle one needs none. When one
    must be made anew after all (the server went away since it was made), SQLAlchemy
    refuses before any I/O, the pool takes it back, and it is made the awaiting way."""
    pool = engine.pool
    if isinstance(pool, QueuePool) and pool.checkedin():
        # The refusal closes the driver's connect coroutine unrun, which Python warns of.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with contextlib.suppress(MissingGreenlet):
                return engine.sync_engine.raw_connection()
    return await engine.raw_connection()


async def core_rows(
    db: Queryable, statement: Executable, params: Mapping[str, Any]
) -> Sequence[Any]:
    """The rows of a statement built once: on a direct connection, or run as Core on a
    session's connection (in its transaction, after an autoflush, as
    `session.execute` would). The ORM's execution and result machinery cost more CPU than
    the query on the lookup and card paths and give nothing to rows that are not objects."""
    if isinstance(db, DirectConnection):
        return await db.rows(statement, params)
    return (await db.run_sync(_core_rows, statement, params)).all()


def _core_rows(session: Any, statement: Executable, params: Mapping[str, Any]) -> Any:
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)
