"""Standby telephony: `callcard telephony` runs twice per PBX, and only the holder of the
PBX's Redis lease runs the PBX link (AMI adapter and FastAGI server).

The other process keeps its database and Redis connections open and polls the lease;
when the active one dies (even kill -9) the lease expires within CALLCARD_TELEPHONY_LEASE_S
and the standby starts the link: its AMI login asks CoreShowChannels, so every live call is
known again, and the call-event service, idempotent by the PBX's call id, writes each call
once however many times it hears of it. Only the active process answers FastAGI (the
standby does not listen): the dialplan asks the second address when the first refuses.

An active process whose Redis is unreachable keeps running (nobody else can take
the lease meanwhile); it stops the link only when it sees another holder, which happens
after Redis lost its data and the standby claimed first: for a moment both may append the
same events, which the consumers' idempotence absorbs."""

from __future__ import annotations

import asyncio
import logging

from crm_api.platform.deps import Services
from crm_api.platform.lease import Lease
from crm_api.platform.runtime import Feature, running_features
from telephony.ami.adapter import parse_ami_url

log = logging.getLogger(__name__)
LEASE_KEY = "callcard:telephony:lease:{pbx}"


def lease_key(ami_url: str) -> str:
    """One lease per PBX, named by its AMI address."""
    url = parse_ami_url(ami_url)
    return LEASE_KEY.format(pbx=f"{url.host}:{url.port}")


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
