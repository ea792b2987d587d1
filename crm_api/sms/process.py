"""`callcard sms`: the SMPP gateway and the SMS/e-mail workers as their own process, one
per SMSC bind. Frames reach browsers through the Redis bus of the API workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from redis.asyncio import Redis

from crm_api.db.session import make_engine, make_sessionmaker
from crm_api.deps import Services
from crm_api.messaging.email import start_email
from crm_api.realtime.bus import Bus, InProcessBus, RedisBus
from crm_api.realtime.hub import Hub
from crm_api.settings import Settings
from crm_api.sms.pipeline import start_sms

log = logging.getLogger(__name__)


async def run_sms(settings: Settings, stop: asyncio.Event | None = None) -> None:
    if not settings.smpp_url:
        raise SystemExit("CALLCARD_SMPP_URL is not set (smpp://system_id:password@host:2775)")
    if not settings.redis_url:
        log.warning("CALLCARD_REDIS_URL is not set: sms.* frames will not reach the API")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    engine = make_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url, protocol=2) if settings.redis_url else None
    backlog = settings.ws_backlog * 10
    bus: Bus = RedisBus(redis, backlog) if redis is not None else InProcessBus(backlog)
    hub = Hub(bus)
    await hub.start()
    services = Services(
        settings=settings, engine=engine, sessions=make_sessionmaker(engine), hub=hub, redis=redis
    )
    stops = [await start_sms(services), await start_email(services)]
    try:
        await stop.wait()
    finally:
        for end in reversed(stops):
            await end()
        await hub.stop()
        await bus.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
