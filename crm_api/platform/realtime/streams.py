"""Durable event pipelines: call and SMS events that must not be lost.

An event is acknowledged only after its handler returned, which is after the handler's
database commit; a handler that fails leaves the event pending, and it is tried again
(by this consumer after a pause, or by another one that claims it). Handlers must be
idempotent: a retried event can arrive twice."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

# A handler gets a run of events in stream order (those of one key that were waiting
# together), so it can write them in one transaction; it succeeds or fails as a whole.
Handler = Callable[[list[dict[str, Any]]], Awaitable[None]]
RETRY_PAUSE_S = 1.0
BATCH = 100
MAX_RUNS_IN_HAND = 4 * BATCH  # read ahead of the handlers no further than this


class EventStream(Protocol):
    async def add(self, event: dict[str, Any]) -> str: ...

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        """Runs until `stop` is set; the events in hand are finished first."""
        ...


class InProcessStream:
    """For the embedded single process: in order, retried until the handler succeeds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._seq = 0

    async def add(self, event: dict[str, Any]) -> str:
        self._seq += 1
        event_id = f"{self._seq}-0"
        self._queue.put_nowait((event_id, event))
        return event_id

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(self._queue.get(), 0.2)
            except TimeoutError:
                continue
            run = [first]
            while len(run) < BATCH and not self._queue.empty():
                run.append(self._queue.get_nowait())
            while True:
                try:
                    await handler([event for _, event in run])
                    break
                except Exception:
                    log.exception("%s: events from %s failed, retrying", self.name, run[0][0])
                    await asyncio.sleep(RETRY_PAUSE_S)

    def pending(self) -> int:
        return self._queue.qsize()


class RedisStream:
    """A Redis stream read by a consumer group; several workers share the load."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        *,
        group: str = "callcard",
        consumer: str = "worker",
        claim_idle_ms: int = 30_000,
        block_ms: int = 1000,
        maxlen: int = 1_000_000,
        key: Callable[[dict[str, Any]], str] | None = None,
        concurrency: int = 8,
        on_read: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`key` (e.g. the call id): events of one key are handled in order, events of
        different keys concurrently, so one slow call does not hold up the others.
        `concurrency` bounds the runs in flight: below the database pool size, or every
        extra run opens (and then closes) an overflow connection and re-prepares its
        statements, which costs more than the concurrency gains. `on_read` sees each event
        the moment it is read, before its run waits for anything: for what must not wait
        (it may see an event again after a retry, and must not raise)."""
        self._redis = redis
        self._key = key
        self._on_read = on_read
        self._slots = asyncio.Semaphore(concurrency)
        self._latest: dict[str, asyncio.Task[bool]] = {}  # each key's newest run
        self._running: set[asyncio.Task[bool]] = set()
        self._failed = False
        self.name = name
        self.group = group
        self.consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._block_ms = block_ms
        self._maxlen = maxlen

    async def add(self, event: dict[str, Any]) -> str:
        event_id = await self._redis.xadd(
            self.name,
            {"e": json.dumps(event, ensure_ascii=False, default=str)},
            maxlen=self._maxlen,
            approximate=True,
        )
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.name, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _dispatch(self, handler: Handler, rows: list[Any]) -> None:
        """Starts a run per key; a key's run waits for that key's run before it."""
        unusable = []  # deleted while pending, or not written by `add`: never handled
        runs: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
        for raw_id, fields in rows:
            try:
                event = json.loads(fields[b"e"])
                key = self._key(event) if self._key else ""
            except (KeyError, TypeError, ValueError, AttributeError):
                log.error("%s: dropping unreadable entry %s: %r", self.name, raw_id, fields)
                unusable.append(raw_id)
                continue
            runs.setdefault(key, []).append((raw_id, event))
            if self._on_read is not None:
                self._on_read(event)
        if unusable:
            await self._redis.xack(self.name, self.group, *unusable)
        for key, run in runs.items():
            task = asyncio.create_task(self._handle_run(handler, run, self._latest.get(key)))
            self._latest[key] = task
            self._running.add(task)
            task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: str, task: asyncio.Task[bool]) -> None:
        self._running.discard(task)
        if self._latest.get(key) is task:
            del self._latest[key]
        # Not acknowledged (the handler or XACK failed, or a run before it did): pending.
        if task.cancelled() or task.exception() is not None or not task.result():
            self._failed = True

    async def _handle_run(
        self,
        handler: Handler,
        run: list[tuple[Any, dict[str, Any]]],
        before: asyncio.Task[bool] | None,
    ) -> bool:
        """True when the run was handled and acknowledged."""
        # A key's events go in stream order: after a failure the rest of that key stays
        # pending too, and the backlog pass retries them all in order.
        if before is not None and not await before:
            return False
        try:
            async with self._slots:
                await handler([event for _, event in run])
        except Exception:
            log.exception("%s: events from %s failed; left pending", self.name, run[0][0])
            return False
        await self._redis.xack(self.name, self.group, *(raw_id for raw_id, _ in run))
        return True

    async def _settle(self) -> None:
        """Waits for every run in flight; after a failure, pauses before the retry."""
        while self._running:
            await asyncio.wait(set(self._running))
        if self._failed:
            self._failed = False
            await asyncio.sleep(RETRY_PAUSE_S)

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        # Stopped by an event, not by cancelling: redis-py leaves a connection hanging
        # when a task is cancelled inside a blocking XREADGROUP (redis/redis-py#2579).
        await self.ensure_group()
        backlog_first = True
        # Entries can only become claimable after claim_idle_ms: asking more often than a
        # fraction of that is a wasted round trip per batch.
        claim_every = self._claim_idle_ms / 4000
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                # Our own pending entries first (a restart or a failed handler), then entries
                # other consumers left idle too long, then new ones. Pending entries are read
                # back only with nothing in flight: in flight, they are pending too.
                if backlog_first:
                    await self._settle()
                    reply: Any = await self._redis.xreadgroup(
                        self.group, self.consumer, {self.name: "0"}, count=BATCH
                    )
                    rows = reply[0][1] if reply else []
                    if rows:
                        await self._dispatch(handler, rows)
                        continue
                    backlog_first = False
                if loop.time() >= next_claim:
                    next_claim = loop.time() + claim_every
                    claimed: Any = await self._redis.xautoclaim(
                        self.name, self.group, self.consumer, self._claim_idle_ms, "0-0",
                        count=BATCH,
                    )  # fmt: skip
                    if claimed[1]:
                        backlog_first, next_claim = True, 0.0  # there may be more to claim
                        continue
                # New entries are read while earlier runs are still in flight, so a call
                # that rings now is not held behind a slow one; a bounded backlog in hand.
                while len(self._running) >= MAX_RUNS_IN_HAND:
                    await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
                fresh: Any = await self._redis.xreadgroup(
                    self.group, self.consumer, {self.name: ">"}, count=BATCH, block=self._block_ms
                )
                for _stream, rows in fresh or []:
                    await self._dispatch(handler, rows)
                backlog_first = self._failed
        finally:
            await self._settle()

    async def pending(self) -> int:
        info = await self._redis.xpending(self.name, self.group)
        return int(info["pending"])
