"""Standby telephony: `callcard telephony` runs twice per PBX, and only the holder of the
PBX's Redis lease runs the PBX link (AMI adapter and FastAGI server).

The other process keeps its database and Redis connections open and polls the lease;
when the active one dies (even kill -9) the lease expires within CALLCARD_TELEPHONY_LEASE_S
and the standby starts the link: its AMI login asks CoreShowChannels, so every live call is
known again, and the call-event service, idempotent by the PBX's call id, writes each call
once however many times it hears of it. Only the active process answers FastAGI (the
standby does not listen): the dialplan asks the second address when the first refuses.

The lease is a Redis key holding the holder's id with an expiry, renewed three times per
period. An active process whose Redis is unreachable keeps running (nobody else can take
the lease meanwhile); it stops the link only when it sees another holder, which happens
after Redis lost its data and the standby claimed first: for a moment both may append the
same events, which the consumers' idempotence absorbs."""

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

from crm_api.platform.deps import Services
from crm_api.platform.runtime import Feature, running_features
from telephony.ami.adapter import parse_ami_url

log = logging.getLogger(__name__)
LEASE_KEY = "callcard:telephony:lease:{pbx}"

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


def lease_key(ami_url: str) -> str:
    """One lease per PBX, named by its AMI address."""
    url = parse_ami_url(ami_url)
    return LEASE_KEY.format(pbx=f"{url.host}:{url.port}")


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


async def while_leased(
    services: Services, features: tuple[Feature, ...], stop: asyncio.Event
) -> None:
    """Runs `features` (the PBX link) while this process holds the PBX's lease; stands by
    otherwise, as often as the lease comes and goes, until `stop`."""
    settings = services.settings
    assert settings.ami_url and services.redis is not None
    lease = Lease(services.redis, lease_key(settings.ami_url), ttl_s=settings.telephony_lease_s)
    gauges = services.metrics.telephony
    log.info("telephony %s standing by for %s", lease.holder, lease.key)
    try:
        while await lease.acquire(stop):
            log.info("telephony %s active for %s", lease.holder, lease.key)
            gauges.active.set(1)
            gauges.takeovers.inc()
            try:
                async with running_features(services, features):
                    await lease.hold(stop)
            finally:
                gauges.active.set(0)
            if not stop.is_set():
                log.info("telephony %s standing by again", lease.holder)
    finally:
        await lease.release()
