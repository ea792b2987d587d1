"""The statements a process sends to its database, as tests observe them: through a
SQLAlchemy session or connection, and straight on a direct connection
(`platform/db/direct.py`), which SQLAlchemy's events do not see."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from asyncpg.transaction import Transaction
from sqlalchemy import Executable
from sqlalchemy import event as db_events
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_api.platform.db.direct import DirectConnection


@contextlib.contextmanager
def statements_sent(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, seen: Callable[[str], None]
) -> Iterator[None]:
    """`seen` gets each statement's SQL as it is sent (a direct one's as SQLAlchemy
    would render it, a direct transaction's start as BEGIN), while the block runs."""

    def sent(_conn: Any, _cursor: Any, statement: str, *_: object) -> None:
        seen(statement)

    rows = DirectConnection.rows

    async def direct(conn: DirectConnection, statement: Executable, params: Mapping) -> list:
        seen(str(statement))
        return await rows(conn, statement, params)

    start = Transaction.start

    async def begin(transaction: Transaction) -> None:
        seen("BEGIN")
        await start(transaction)

    with monkeypatch.context() as patch:
        patch.setattr(DirectConnection, "rows", direct)
        patch.setattr(Transaction, "start", begin)
        db_events.listen(engine.sync_engine, "before_cursor_execute", sent)
        try:
            yield
        finally:
            db_events.remove(engine.sync_engine, "before_cursor_execute", sent)
