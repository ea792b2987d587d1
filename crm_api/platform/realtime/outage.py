"""A dependency that went away (PostgreSQL, Redis) is said once when it breaks and once when
it is back, however many retries there were in between: not a traceback per attempt."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_OUTAGE_TYPES = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, socket errors
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
    PoolTimeout,
    asyncpg.PostgresConnectionError,  # e.g. "the database system is shutting down"
    asyncpg.InterfaceError,  # e.g. the connection was closed under a query
)


def is_outage(exc: BaseException) -> bool:
    """A peer that cannot be reached (or dropped us), as opposed to a bug or bad data."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _OUTAGE_TYPES):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def reraise_if_cancelled() -> None:
    """For an `except` around a Redis call: redis-py may turn the cancellation of a
    blocked read into a connection error, which a retry loop must not swallow."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class Outage:
    """Tracks one dependency as one user of it sees it."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self._log = logger
        self._since: float | None = None
        self._failures = 0
        self.error: str | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def down_for(self) -> float:
        return time.monotonic() - self._since if self._since is not None else 0.0

    def failed(self, exc: BaseException) -> None:
        self.error = describe(exc)
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            self._log.warning(
                "%s unavailable (%s); retrying until it is back", self.what, self.error
            )

    def ok(self, attempt_began: float | None = None) -> None:
        """The dependency answered (to an attempt begun at `attempt_began`, monotonic)."""
        if self._since is None:
            return
        if attempt_began is not None and attempt_began < self._since:
            return  # an attempt older than the outage: not a sign it is over
        self._log.warning(
            "%s back after %.1f s (%d failed attempts)", self.what, self.down_for, self._failures
        )
        self._since, self._failures, self.error = None, 0, None

    def failed_or_bug(self, exc: BaseException, message: str) -> None:
        """For a retry loop: an outage said once, anything else (a bug) with its traceback."""
        if is_outage(exc):
            self.failed(exc)
        else:
            self._log.error(message, exc_info=exc)
