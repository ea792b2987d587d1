"""Login throttling: wrong passwords are counted per account and per address; past a
few free ones, each further failure doubles the wait before the next try (up to 15
minutes). While waiting, a login is refused without checking the password at all.

Kept in Redis when there is one (every API worker sees the same counts), else in this
process. Counts fade after an hour without failures."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

WINDOW_S = 3600
MAX_DELAY_S = 900.0


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # "user:<username>" or "addr:<ip>"
    free: int  # failures allowed before any wait


def delay_after(failures: int, free: int) -> float:
    """Seconds to wait after `failures` in a row: 0, then 1, 2, 4 … 900."""
    if failures <= free:
        return 0.0
    return min(MAX_DELAY_S, 2.0 ** (failures - free - 1))


@dataclass
class LoginThrottle:
    redis: Redis | None = None
    _local: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def wait_s(self, keys: list[Key]) -> int:
        """Whole seconds until a login may be tried (0: now)."""
        now = time.time()
        wait = 0.0
        for key in keys:
            failures, last = await self._read(key.name)
            wait = max(wait, last + delay_after(failures, key.free) - now)
        return math.ceil(wait) if wait > 0 else 0

    async def failed(self, keys: list[Key]) -> None:
        now = time.time()
        for key in keys:
            if self.redis is not None:
                name = f"callcard:login:{key.name}"
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hincrby(name, "failures", 1)
                    pipe.hset(name, "last", str(now))
                    pipe.expire(name, WINDOW_S)
                    await pipe.execute()
            else:
                failures, _ = self._local.get(key.name, (0, 0.0))
                self._local[key.name] = (failures + 1, now)
                self._forget_old(now)

    async def succeeded(self, key: Key) -> None:
        if self.redis is not None:
            await self.redis.delete(f"callcard:login:{key.name}")
        else:
            self._local.pop(key.name, None)

    async def _read(self, name: str) -> tuple[int, float]:
        if self.redis is not None:
            raw = await self.redis.hgetall(f"callcard:login:{name}")
            if not raw:
                return 0, 0.0
            return int(raw.get(b"failures", 0)), float(raw.get(b"last", 0.0))
        failures, last = self._local.get(name, (0, 0.0))
        if last < time.time() - WINDOW_S:
            return 0, 0.0
        return failures, last

    def _forget_old(self, now: float) -> None:
        if len(self._local) > 10_000:
            for name in [n for n, (_, last) in self._local.items() if last < now - WINDOW_S]:
                del self._local[name]
