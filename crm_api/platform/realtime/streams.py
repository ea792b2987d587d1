"""Durable event pipelines: call and SMS events that must not be lost.

An event is acknowledged only after its handler returned, which is after the handler's
database commit; a handler that fails leaves the event pending, and it is tried again
(by this consumer after a pause, or by another one that claims it). Handlers must be
idempotent: a retried event can arrive twice.

A consumer outlives any Redis outage: it retries with a capped backoff, recreates its
group when Redis lost it (restarted without persistence: NOGROUP), and goes on with what
is pending. An outage of Redis or of the handler's database is one log line when it
begins and one when it ends. `status` says whether it consumes, for /health."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from crm_api.platform.db.base import utcnow
from crm_api.platform.realtime.outage import Outage, is_outage, reraise_if_cancelled
from crm_api.platform.realtime.redis_line import RedisLine, pack, raise_errors

log = logging.getLogger(__name__)


class Handler(Protocol):
    """Gets a run of events in stream order (those of one key that were waiting together),
    so it can write them in one transaction; it succeeds or fails as a whole. `again`: the
    run was delivered before (read back from the pending entries, or retried after a
    failure), so it may have been written with its effects half done: what it sends after
    its commit must go out again, for readers to drop the copies of what did."""

    def __call__(self, run: list[dict[str, Any]], *, again: bool) -> Awaitable[None]: ...


RETRY_PAUSE_S = 1.0
BATCH = 100
MAX_RUNS_IN_HAND = 4 * BATCH  # read ahead of the handlers no further than this
REDIS_BACKOFF_MIN_S = 0.2
REDIS_BACKOFF_MAX_S = 2.0  # Redis back is noticed within this


@dataclass(slots=True)
class ConsumerStatus:
    """What /health reports of one consumer."""

    stream: str
    running: bool = False  # its task is alive
    consuming: bool = False  # its last read from the stream worked
    error: str | None = None  # why it does not consume
    failing_since: datetime | None = None
    last_read_at: datetime | None = None
    handler_error: str | None = None  # the handler's dependency is down (events wait)

    @property
    def ok(self) -> bool:
        return self.running and self.consuming

    def as_dict(self) -> dict[str, object]:
        return {
            "stream": self.stream,
            "running": self.running,
            "consuming": self.ok,
            "error": self.error,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "last_read_at": self.last_read_at.isoformat() if self.last_read_at else None,
            "handler_error": self.handler_error,
        }


@dataclass(frozen=True, slots=True)
class Backlog:
    """Entries not yet handled: delivered but unacknowledged, and not read at all."""

    pending: int
    unread: int
    oldest_age_s: float  # of the oldest entry not yet acknowledged; 0 when none

    def as_dict(self) -> dict[str, object]:
        return {
            "pending": self.pending,
            "unread": self.unread,
            "oldest_age_s": round(self.oldest_age_s, 1),
        }


class Appender(Protocol):
    async def add(self, event: dict[str, Any]) -> str: ...


class EventStream(Appender, Protocol):
    name: str
    status: ConsumerStatus

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        """Runs until `stop` is set; the events in hand are finished first."""
        ...

    async def backlog(self) -> Backlog: ...


async def consume_supervised(stream: EventStream, handler: Handler, stop: asyncio.Event) -> None:
    """`stream.consume`, started again should it ever die of something unforeseen."""
    while not stop.is_set():
        try:
            await stream.consume(handler, stop)
        except Exception:
            log.exception("%s: the consumer died; starting it again", stream.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_PAUSE_S)


class InProcessStream:
    """For the embedded single process: in order, retried until the handler succeeds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._seq = 0
        self._handled = 0  # events handled so far (in order: the first `_handled` added)
        self.status = ConsumerStatus(name)
        self._handler_outage = Outage(f"{name}: the event handler's storage", log)

    async def add(self, event: dict[str, Any]) -> str:
        self._seq += 1
        event_id = f"{self._seq}-0"
        self._queue.put_nowait((event_id, event))
        return event_id

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        self.status.running = self.status.consuming = True
        try:
            while not stop.is_set():
                try:
                    first = await asyncio.wait_for(self._queue.get(), 0.2)
                except TimeoutError:
                    continue
                run = [first]
                while len(run) < BATCH and not self._queue.empty():
                    run.append(self._queue.get_nowait())
                again = False
                while True:
                    try:
                        await handler([event for _, event in run], again=again)
                        self._handled += len(run)
                        self._handler_outage.ok()
                        self.status.handler_error = None
                        break
                    except Exception as exc:
                        outage, status = self._handler_outage, self.status
                        _handler_failed(self.name, outage, status, exc, run[0][0])
                        again = True
                        await asyncio.sleep(RETRY_PAUSE_S)
        finally:
            self.status.running = False

    async def backlog(self) -> Backlog:
        waiting = self._queue.qsize()
        # Taken from the queue but not handled yet: the run in hand.
        in_hand = self._seq - self._handled - waiting
        return Backlog(pending=in_hand, unread=waiting, oldest_age_s=0.0)


def _handler_failed(
    name: str, outage: Outage, status: ConsumerStatus, exc: Exception, first_id: object
) -> None:
    if is_outage(exc):
        outage.failed(exc)  # once per outage, however many runs wait on it
        status.handler_error = outage.error
    else:
        log.exception("%s: events from %s failed; left pending", name, first_id)


def stream_outages(name: str) -> tuple[Outage, Outage]:
    """How a stream's consumer tracks Redis and its handler's storage."""
    return Outage(f"{name}: Redis", log), Outage(f"{name}: the event handler's storage", log)


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
        concurrency: int | asyncio.Semaphore = 8,
        on_read: Callable[[dict[str, Any]], None] | None = None,
        outages: tuple[Outage, Outage] | None = None,
        ack_with_reads: bool = False,
    ) -> None:
        """`key` (e.g. the call id): events of one key are handled in order, events of
        different keys concurrently, so one slow call does not hold up the others.
        `concurrency` bounds the runs in flight: below the database pool size, or every
        extra run opens (and then closes) an overflow connection and re-prepares its
        statements, which costs more than the concurrency gains. `on_read` sees each event
        the moment it is read, before its run waits for anything: for what must not wait
        (it may see an event again after a retry, and must not raise). `concurrency` may be
        a semaphore shared with other streams. `outages` (Redis's, the handler's) may be
        shared by the partitions of one stream, so an outage is still one line when it
        begins and one when it ends. `ack_with_reads`: a handled run is acknowledged with
        the stream's next read (one round trip for both, where a busy stream costs a round
        trip per run otherwise), at the latest `block_ms` later: a crash meanwhile hands
        it to the handler again, which must find it done."""
        self._redis = redis
        self._key = key
        self._on_read = on_read
        self._slots = (
            concurrency
            if isinstance(concurrency, asyncio.Semaphore)
            else asyncio.Semaphore(concurrency)
        )
        self._latest: dict[str, asyncio.Task[bool]] = {}  # each key's newest run
        self._running: set[asyncio.Task[bool]] = set()
        self._failed = False
        self.name = name
        self.group = group
        self.consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._block_ms = block_ms
        self._maxlen = maxlen
        self.status = ConsumerStatus(name)
        self._redis_outage, self._handler_outage = outages or stream_outages(name)
        self._ack_with_reads = ack_with_reads
        self._handled: list[Any] = []  # ids of handled entries the next read acknowledges
        self._reader = RedisLine(redis)  # the reads, each waiting up to block_ms
        self._reads: dict[tuple[str, int | None], bytes] = {}  # XREADGROUP, as sent

    async def add(self, event: dict[str, Any]) -> str:
        return await append(self._redis, self.name, event, maxlen=self._maxlen)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.name, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _dispatch(self, handler: Handler, rows: list[Any], *, again: bool) -> None:
        """Starts a run per key; a key's run waits for that key's run before it. `again`:
        the rows are pending entries read back."""
        # Deleted while pending or not written by `add`: never handled.
        unusable = []
        runs: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
        for raw_id, fields in rows:
            try:
                # The fields as Redis sends them, [b"e", <json>] (None when deleted): names
                # and values by turns.
                event = json.loads(dict(zip(fields[::2], fields[1::2], strict=True))[b"e"])
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
            handling = self._handle_run(handler, run, self._latest.get(key), again=again)
            task = asyncio.create_task(handling)
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
        *,
        again: bool,
    ) -> bool:
        """True when the run was handled and acknowledged."""
        # A key's events go in stream order: after a failure the rest of that key stays
        # pending too, and the backlog pass retries them all in order.
        if before is not None and not await before:
            return False
        try:
            async with self._slots:
                started = time.monotonic()
                await handler([event for _, event in run], again=again)
        except Exception as exc:
            _handler_failed(self.name, self._handler_outage, self.status, exc, run[0][0])
            return False
        # A run begun before the outage was noticed says nothing of the storage now (runs
        # of several partitions overlap).
        self._handler_outage.ok(attempt_began=started)
        self.status.handler_error = None
        # A failed XACK (Redis away) leaves the run pending: it is handled again, idempotently.
        if self._ack_with_reads:
            self._handled.extend(raw_id for raw_id, _ in run)
        else:
            await self._redis.xack(self.name, self.group, *(raw_id for raw_id, _ in run))
        return True

    async def _settle(self) -> None:
        """Waits for every run in flight and acknowledges what they handled; after a
        failure, pauses before the retry."""
        while self._running:
            await asyncio.wait(set(self._running))
        if self._handled:
            with contextlib.suppress(RedisError, OSError):  # left pending: handled again
                await self._redis.xack(self.name, self.group, *self._handled)
                self._handled.clear()
        if self._failed:
            self._failed = False
            await asyncio.sleep(RETRY_PAUSE_S)

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        """Runs until `stop` is set, through any number of Redis outages."""
        backoff = REDIS_BACKOFF_MIN_S
        self.status.running = True
        try:
            while not stop.is_set():
                try:
                    await self._consume(handler, stop)
                except (RedisError, OSError) as exc:
                    reraise_if_cancelled()
                    self._read_failed(exc)
                    await self._settle()  # what is in flight finishes (or stays pending)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(backoff * 2, REDIS_BACKOFF_MAX_S)
                else:
                    backoff = REDIS_BACKOFF_MIN_S
        finally:
            self.status.running = False
            await self._settle()
            await self._reader.close()

    async def _read(self, start: str, block: int | None = None) -> Any:
        """The entries XREADGROUP returns as Redis sends them ([[stream, [[id, fields]...]]]
        or None), on this consumer's own connection, with the acknowledgements of the runs
        handled since the last read in the same write."""
        began = time.monotonic()
        handled, self._handled = self._handled, []
        # The read is the same every time (there are two): packed once, not per read.
        read = self._reads.get((start, block))
        if read is None:
            blocking = () if block is None else ("BLOCK", block)
            command = ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", BATCH, *blocking)
            read = self._reads[start, block] = pack(*command, "STREAMS", self.name, start)
        if handled:
            read = pack("XACK", self.name, self.group, *handled) + read
        try:
            sent = self._reader.send(read, 1 + bool(handled), wait_s=(block or 0) / 1000)
            replies = raise_errors(await sent)
        except BaseException:
            self._handled[:0] = handled  # acknowledged again with the next read, harmlessly
            raise
        self._read_ok(began)
        return replies[-1]

    def _read_ok(self, began: float) -> None:
        # A read begun before the outage was noticed (a blocking one may have waited its
        # whole block) says nothing of Redis now.
        self._redis_outage.ok(attempt_began=began)
        self.status.consuming, self.status.error, self.status.failing_since = True, None, None
        self.status.last_read_at = utcnow()

    def _read_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            # Redis came back without our group (no persistence): the next pass recreates it.
            log.warning("%s: consumer group %s is gone; recreating it", self.name, self.group)
        self._redis_outage.failed(exc)
        if self.status.consuming or self.status.failing_since is None:
            self.status.failing_since = utcnow()
        self.status.consuming, self.status.error = False, self._redis_outage.error

    async def _consume(self, handler: Handler, stop: asyncio.Event) -> None:
        # Stopped by an event, not by cancelling: redis-py leaves a connection hanging
        # when a task is cancelled inside a blocking XREADGROUP (redis/redis-py#2579).
        began = time.monotonic()
        await self.ensure_group()
        self._read_ok(began)
        backlog_first = True
        # Entries can only become claimable after claim_idle_ms: asking more often than a
        # fraction of that is a wasted round trip per batch.
        claim_every = self._claim_idle_ms / 4000
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            # Our own pending entries first (a restart, a failed handler, an outage), then
            # entries other consumers left idle too long, then new ones. Pending entries are
            # read back only with nothing in flight: in flight, they are pending too.
            if backlog_first:
                await self._settle()
                reply: Any = await self._read("0")
                rows = reply[0][1] if reply else []
                if rows:
                    await self._dispatch(handler, rows, again=True)
                    continue
                backlog_first = False
            if loop.time() >= next_claim:
                next_claim = loop.time() + claim_every
                claimed: Any = await self._redis.xautoclaim(
                    self.name, self.group, self.consumer, self._claim_idle_ms, "0-0", count=BATCH
                )
                if claimed[1]:
                    backlog_first, next_claim = True, 0.0  # there may be more to claim
                    continue
            # New entries are read while earlier runs are still in flight, so a call
            # that rings now is not held behind a slow one; a bounded backlog in hand.
            while len(self._running) >= MAX_RUNS_IN_HAND:
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            fresh: Any = await self._read(">", self._block_ms)
            for _stream, rows in fresh or []:
                await self._dispatch(handler, rows, again=False)
            backlog_first = self._failed

    async def pending(self) -> int:
        info = await self._redis.xpending(self.name, self.group)
        return int(info["pending"])

    async def backlog(self) -> Backlog:
        """How far the group is behind the stream (raises RedisError when Redis is away)."""
        groups: Any = await self._redis.xinfo_groups(self.name)
        group = next((g for g in groups if _text(g["name"]) == self.group), None)
        if group is None:
            return Backlog(pending=0, unread=await self._redis.xlen(self.name), oldest_age_s=0.0)
        pending, unread = int(group["pending"]), int(group.get("lag") or 0)
        oldest: str | None = None
        if pending:
            summary: Any = await self._redis.xpending(self.name, self.group)
            oldest = _text(summary["min"])
        elif unread:
            first: Any = await self._redis.xrange(
                self.name, min=f"({_text(group['last-delivered-id'])}", count=1
            )
            oldest = _text(first[0][0]) if first else None
        age = 0.0
        if oldest is not None:
            age = max(time.time() - int(oldest.partition("-")[0]) / 1000, 0.0)
        return Backlog(pending=pending, unread=unread, oldest_age_s=age)


async def append(redis: Redis, stream: str, event: dict[str, Any], *, maxlen: int) -> str:
    event_id = await redis.xadd(
        stream,
        {"e": json.dumps(event, ensure_ascii=False, default=str)},
        maxlen=maxlen,
        approximate=True,
    )
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
