"""A lease in Redis: a key holding its holder's id with an expiry, renewed three times per
period. Who holds it does the work only one process may do at a time (a PBX's link, a
partition of the call events); when the holder dies the key expires and another takes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Renews when the key is ours or gone (Redis restarted without its data); 0 when another
# process holds it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    def __init__(self, redis: Redis, key: str, *, ttl_s: float, holder: str | None = None) -> None:
        self._redis = redis
        self.key = key
        self.ttl_s = ttl_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def _call(self, coro: Any) -> Any:
        # Never longer than a renewal period: a hung Redis must not hold the loop's turn.
        return await asyncio.wait_for(coro, self.ttl_s / 3)

    async def try_acquire(self) -> bool:
        ttl_ms = int(self.ttl_s * 1000)
        return bool(await self._call(self._redis.set(self.key, self.holder, nx=True, px=ttl_ms)))

    async def holder_now(self) -> str | None:
        value = await self._call(self._redis.get(self.key))
        return value.decode() if isinstance(value, bytes) else value

    async def renew(self) -> bool:
        """False when another process holds the lease; raises when Redis does not answer."""
        ttl_ms = int(self.ttl_s * 1000)
        return bool(await self._call(self._renew(keys=[self.key], args=[self.holder, ttl_ms])))

    async def release(self) -> None:
        with contextlib.suppress(RedisError, TimeoutError, OSError):
            await self._call(self._release(keys=[self.key], args=[self.holder]))

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Waits until this process holds the lease (True) or `stop` is set (False). A key
        found missing is claimed only when it is still missing a renewal period later: after
        a Redis restart the active process re-claims it first."""
        seen_free = False
        while not stop.is_set():
            try:
                if await self.holder_now() is None:
                    if seen_free and await self.try_acquire():
                        return True
                    seen_free = True
                else:
                    seen_free = False
            except (RedisError, TimeoutError, OSError) as exc:
                log.warning("telephony lease: Redis unreachable (%r)", exc)
                seen_free = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl_s / 3)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renews until `stop` is set or another process holds the lease."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl_s / 3)
            if stop.is_set():
                return
            try:
                if not await self.renew():
                    log.error("telephony lease %s taken by %s", self.key, await self.holder_now())
                    return
            except (RedisError, TimeoutError, OSError) as exc:
                log.warning("telephony lease: cannot renew (%r); still active", exc)
