"""The call-event stream partitioned by call id across the live API workers, so that each
call's events are handled in order by one worker at a time.

Each of CALLCARD_CALL_PARTITIONS partitions is a stream of its own (`<name>:<p>`), to
which producers (`callcard telephony`, the SIP bridge) append the events of the calls
hashed to it, in order; a worker reads only the streams of the partitions it holds, so
an event is read and decoded once, by the worker that handles it. A partition is
consumed only by the holder of its lease (platform.lease), always as the same consumer
name of the same group, so a new holder reads back what the previous one left
unacknowledged first.

Workers announce themselves in a sorted set (score: until when they are alive, on
Redis's clock) and share the partitions round robin over the live ones, each worker
computing the same split. A worker hands a partition over by finishing its
runs in flight, then releasing the lease; the dead's leases expire within
CALLCARD_CALL_PARTITION_LEASE_S."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from crm_api.platform.db.base import utcnow
from crm_api.platform.lease import Lease
from crm_api.platform.realtime.streams import (
    Backlog,
    ConsumerStatus,
    Handler,
    RedisStream,
    append,
)

log = logging.getLogger(__name__)
GROUP = "calls:p{}"
CONSUMER = "owner"  # one consumer per group: the lease holder's
LEASE_KEY = "callcard:calls:partition:{}"
WORKERS_KEY = "callcard:calls:workers"

# Marks this worker alive until now + ttl (Redis's clock) and lists the live ones.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def partition_of(call_id: str, partitions: int) -> int:
    digest = hashlib.blake2b(call_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def partition_stream(name: str, partition: int) -> str:
    return f"{name}:{partition}"


class CallAppender:
    """Appends each call event to its partition's stream."""

    def __init__(self, redis: Redis, name: str, *, partitions: int, maxlen: int = 1_000_000):
        self._redis = redis
        self.name = name
        self.partitions = partitions
        self._maxlen = maxlen

    def stream_of(self, event: dict[str, Any]) -> str:
        call_id = str(event.get("call_id", ""))
        return partition_stream(self.name, partition_of(call_id, self.partitions))

    def streams(self) -> list[str]:
        return [partition_stream(self.name, p) for p in range(self.partitions)]

    async def add(self, event: dict[str, Any]) -> str:
        return await append(self._redis, self.stream_of(event), event, maxlen=self._maxlen)


def shares(workers: list[str], partitions: int) -> dict[str, set[int]]:
    """Every worker computes the same split from the same live list: round robin over the
    sorted workers, so no worker idles while another holds three partitions."""
    ordered = sorted(workers)
    split: dict[str, set[int]] = {worker: set() for worker in ordered}
    for partition in range(partitions):
        split[ordered[partition % len(ordered)]].add(partition)
    return split


@dataclass
class _Held:
    reader: RedisStream
    stop: asyncio.Event  # set: finish what is in hand and let the partition go
    keeper: asyncio.Task[None]


class PartitionedStream:
    """The call-event stream: `add` appends, `consume` handles this worker's partitions."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        *,
        partitions: int,
        worker: str,
        lease_s: float,
        consumer: Callable[[int], RedisStream],
        on_take: Callable[[int], None] | None = None,
    ) -> None:
        """`consumer(p)` makes partition p's reader (of its stream, with its handler);
        `on_take(p)` is told when this worker takes partition p (again), before reading it:
        what it knew of p's calls may be out of date (another worker may have held it)."""
        self._redis = redis
        self.name = name
        self.partitions = partitions
        self.worker = worker
        self._lease_s = lease_s
        self._consumer = consumer
        self._on_take = on_take
        self.appender = CallAppender(redis, name, partitions=partitions)
        self._beat = redis.register_script(_BEAT)
        self._held: dict[int, _Held] = {}
        self.status = ConsumerStatus(name)

    @property
    def owned(self) -> frozenset[int]:
        """The partitions this worker handles now (not those it is letting go)."""
        return frozenset(p for p, held in self._held.items() if not held.stop.is_set())

    def readers(self) -> list[RedisStream]:
        return [held.reader for held in self._held.values() if not held.stop.is_set()]

    async def backlog(self) -> Backlog:
        """What waits in the partitions this worker holds (over the workers: all of it)."""
        parts = [await reader.backlog() for reader in self.readers()]
        return Backlog(
            pending=sum(part.pending for part in parts),
            unread=sum(part.unread for part in parts),
            oldest_age_s=max((part.oldest_age_s for part in parts), default=0.0),
        )

    def _report(self, redis_error: str | None = None) -> None:
        """/health's view: consuming unless Redis or one of the partitions' readers fails."""
        failing = [r.status for r in self.readers() if r.status.failing_since is not None]
        status = self.status
        if redis_error is not None:
            status.error = redis_error
            status.failing_since = status.failing_since or utcnow()
        elif failing:
            status.error, status.failing_since = failing[0].error, failing[0].failing_since
        else:
            status.error = status.failing_since = None
        status.consuming = status.error is None
        status.handler_error = next(
            (r.status.handler_error for r in self.readers() if r.status.handler_error), None
        )
        reads = [r.status.last_read_at for r in self.readers() if r.status.last_read_at]
        status.last_read_at = max(reads, default=status.last_read_at)

    async def add(self, event: dict[str, Any]) -> str:
        return await self.appender.add(event)

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        self.status.running = True
        try:
            while not stop.is_set():
                try:
                    await self._rebalance(handler)
                    self._report()
                except (RedisError, TimeoutError, OSError) as exc:
                    # Keep what is held: nobody can take it while Redis is away.
                    if self.status.error is None:
                        log.warning("call partitions: Redis unreachable (%r)", exc)
                    self._report(f"Redis: {exc!r}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._lease_s / 3)
        finally:
            self.status.running = False
            for held in self._held.values():
                held.stop.set()
            await asyncio.gather(*(held.keeper for held in self._held.values()))
            self._held.clear()
            with contextlib.suppress(RedisError, TimeoutError, OSError):
                await self._redis.zrem(WORKERS_KEY, self.worker)

    async def _rebalance(self, handler: Handler) -> None:
        # A worker is taken for gone only after two periods without a beat: a busy loop
        # must not shuffle the partitions (their leases keep them exclusive regardless).
        ttl_ms = int(self._lease_s * 2000)
        raw: Any = await asyncio.wait_for(
            self._beat(keys=[WORKERS_KEY], args=[self.worker, ttl_ms]), self._lease_s / 3
        )
        live = [w.decode() if isinstance(w, bytes) else str(w) for w in raw]
        mine = shares(live, self.partitions).get(self.worker, set())
        before = self.owned
        for partition, held in list(self._held.items()):
            if held.keeper.done():
                del self._held[partition]  # let go (or taken): another may hold it now
            elif partition not in mine:
                held.stop.set()
        for partition in sorted(mine - set(self._held)):
            lease = Lease(
                self._redis, LEASE_KEY.format(partition), ttl_s=self._lease_s, holder=self.worker
            )
            if await lease.try_acquire():
                if self._on_take is not None:
                    self._on_take(partition)
                stop = asyncio.Event()
                reader = self._consumer(partition)
                keeper = self._keep(partition, reader, lease, handler, stop)
                self._held[partition] = _Held(reader, stop, asyncio.create_task(keeper))
        if self.owned != before:
            log.info("call partitions of %s: %s", self.worker, sorted(self.owned))

    async def _keep(
        self,
        partition: int,
        reader: RedisStream,
        lease: Lease,
        handler: Handler,
        stop: asyncio.Event,
    ) -> None:
        """Consumes the partition while renewing its lease; once told to stop, finishes the
        runs in hand, still renewing, and only then lets another worker take it."""
        consumer = asyncio.create_task(reader.consume(handler, stop), name=f"calls-p{partition}")
        lost = False
        while not consumer.done():
            await asyncio.wait({consumer}, timeout=lease.ttl_s / 3)
            if consumer.done():
                break
            try:
                lost = not await lease.renew()
            except (RedisError, TimeoutError, OSError) as exc:
                log.warning("call partition %d: cannot renew its lease (%r)", partition, exc)
            if lost:
                log.error("call partition %d taken by another worker", partition)
                stop.set()
                break
        try:
            await consumer
        except Exception:
            log.exception("call partition %d stopped with an error", partition)
        if not lost:
            await lease.release()
