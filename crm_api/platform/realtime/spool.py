"""Events appended to a Redis stream by a process that must never drop one (`callcard
telephony`), whatever Redis does; `route` may spread them over several streams (the call
partitions), each keeping the order in which they were added.

`add` never waits and never fails: events queue in order, in memory up to a bound and on
disk beyond it (and for as long as Redis is away, so a crash loses nothing), and a single
writer task appends them in batches. Redis away is one log line when it goes and one when
it is back. Redis restarted without its data (no persistence: the stream and its
consumer group are gone) is noticed atomically with the next batch, by a marker key that
vanishes with the data: the events of the last `replay_s` seconds are appended again
before it, since the consumers may not have read them yet (they handle events
idempotently, so a second copy changes nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from crm_api.platform.realtime.outage import Outage, reraise_if_cancelled
from crm_api.platform.realtime.redis_line import RedisLine

log = logging.getLogger(__name__)

BATCH = 500
SEGMENT_LINES = 2000  # events per spool file
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0
# Appends a batch unless the marker (KEYS[1]) is gone (Redis lost its data): then -1,
# nothing added. ARGV: maxlen, "set the marker", then per event its stream (an index into
# KEYS) and the event.
_APPEND = """
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], '1')
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i + 1])
end
return (#ARGV - 2) / 2
"""
_Line = tuple[str, str]  # (its stream, the event encoded)


class SpooledAppender:
    def __init__(
        self,
        redis: Redis,
        stream: str,
        spool_dir: Path,
        *,
        memory_limit: int = 10_000,
        replay_s: float = 30.0,
        maxlen: int = 1_000_000,
        route: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        """`route(event)`: the stream an event goes to (default: `stream`)."""
        self._line = RedisLine(redis)  # a round trip per batch, often of one event
        self._stream = stream
        self._route = route or (lambda _: stream)
        self._marker = f"{stream}:writer"
        self._dir = spool_dir
        self._memory_limit = memory_limit
        self._replay_s = replay_s
        self._maxlen = maxlen
        self._memory: deque[_Line] = deque()  # the oldest events waiting, encoded
        self._segments: deque[Path] = deque()  # then these files, oldest first
        self._tail_lines = 0  # events in the newest segment
        self._sent: deque[tuple[float, _Line]] = deque()  # appended within replay_s
        self._marked = False  # the marker was set by this process
        self._outage = Outage(f"{stream}: Redis (events are spooled meanwhile)", log)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.spooled = 0  # events that went to disk, for tests and the status page

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        left = sorted(self._dir.glob("*.jsonl"), key=_segment_number)
        self._segments.extend(left)  # a previous run's events go first
        if left:
            log.warning(
                "%s: %d spool file(s) from before found; sending them", self._stream, len(left)
            )
        self._task = asyncio.create_task(self._run(), name=f"spool-{self._stream}")
        self._wake.set()

    async def stop(self, within_s: float = 5.0) -> None:
        """Delivers what it can within `within_s`; the rest stays on disk for the next run."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), within_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._line.close()
        if self._memory:
            first = _segment_number(self._segments[0]) - 1 if self._segments else 10**9
            self._write(self._dir / f"{first:012d}.jsonl", [line for _, line in self._memory])
            log.warning("%s: %d undelivered event(s) kept on disk", self._stream, len(self._memory))
            self._memory.clear()

    async def drained(self) -> None:
        """Returns once every event added so far is in Redis."""
        while self.waiting:
            self._idle.clear()
            await self._idle.wait()

    @property
    def waiting(self) -> int:
        """Events not yet in Redis (those on disk counted by file)."""
        return len(self._memory) + len(self._segments)

    # ------------------------------------------------------------------ add
    def add(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False, default=str)
        # Behind anything on disk, and on disk while Redis is away (a crash loses nothing).
        if self._segments or self._outage.down or len(self._memory) >= self._memory_limit:
            self._spool(line)
        else:
            self._memory.append((self._route(event), line))
        self._wake.set()

    def _spool(self, line: str) -> None:
        if not self._segments or self._tail_lines >= SEGMENT_LINES:
            number = _segment_number(self._segments[-1]) + 1 if self._segments else 10**9
            self._segments.append(self._dir / f"{number:012d}.jsonl")
            self._tail_lines = 0
        with self._segments[-1].open("a", encoding="utf-8") as out:
            out.write(line + "\n")
        self._tail_lines += 1
        self.spooled += 1

    @staticmethod
    def _write(path: Path, lines: list[str]) -> None:
        with path.open("w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)

    # --------------------------------------------------------------- writer
    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            if not self.waiting:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._deliver_some()
            except (RedisError, OSError) as exc:
                reraise_if_cancelled()
                self._outage.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            except Exception:
                # A bug must not end the only writer: the events wait, and it tries again.
                log.exception("%s: delivering spooled events failed", self._stream)
                await asyncio.sleep(BACKOFF_MAX_S)
                continue
            self._outage.ok()
            backoff = BACKOFF_MIN_S

    async def _deliver_some(self) -> None:
        if self._memory:
            batch = [self._memory[i] for i in range(min(BATCH, len(self._memory)))]
            await self._send(batch)
            for _ in batch:
                self._memory.popleft()
            return
        segment = self._segments[0]
        if len(self._segments) == 1:
            self._tail_lines = SEGMENT_LINES  # new events start a new file
        lines = self._routed(await asyncio.to_thread(_read_lines, segment))
        for start in range(0, len(lines), BATCH):
            await self._send(lines[start : start + BATCH])
        # Deleted only once all of it is in Redis: a crash before sends it again (harmless).
        segment.unlink(missing_ok=True)
        self._segments.popleft()

    def _routed(self, lines: list[str]) -> list[_Line]:
        routed = []
        for line in lines:
            try:
                routed.append((self._route(json.loads(line)), line))
            except (ValueError, TypeError, AttributeError):
                log.error("%s: dropping an unreadable spooled event: %r", self._stream, line)
        return routed

    async def _append_batch(self, batch: list[_Line], *, mark: bool) -> int:
        keys = [self._marker]
        index: dict[str, int] = {}
        args: list[Any] = [self._maxlen, "1" if mark else "0"]
        for stream, line in batch:
            if stream not in index:
                keys.append(stream)
                index[stream] = len(keys)  # Lua counts from 1
            args += [index[stream], line]
        return int(await self._line.evalsha(_APPEND, keys, args))

    async def _send(self, batch: list[_Line]) -> None:
        added = await self._append_batch(batch, mark=not self._marked)
        if added == -1:
            # Redis came back empty: what it may not have handed on yet goes again first.
            now = time.monotonic()
            again = [line for at, line in self._sent if now - at <= self._replay_s]
            log.warning(
                "%s: Redis lost its data; appending the last %d event(s) again",
                self._stream,
                len(again),
            )
            for start in range(0, len(again), BATCH):
                await self._append_batch(again[start : start + BATCH], mark=True)
            await self._append_batch(batch, mark=True)
        self._marked = True
        now = time.monotonic()
        self._sent.extend((now, line) for line in batch)
        while self._sent and now - self._sent[0][0] > self._replay_s:
            self._sent.popleft()


def _segment_number(path: Path) -> int:
    return int(path.stem)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    # A line cut by a crash mid-write is not an event.
    return [line for line in text.splitlines() if line.endswith("}")]
