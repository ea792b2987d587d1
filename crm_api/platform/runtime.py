"""The infrastructure every Callcard process shares (database, bus, hub), built once, and
the headless processes (`callcard telephony`, `callcard sms`) that run features without
the HTTP API. Frames they publish reach browsers through the API workers' Redis bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis

from crm_api.accounts.throttle import LoginThrottle
from crm_api.platform.db.session import make_engine, make_read_sessionmaker, make_sessionmaker
from crm_api.platform.deps import Services
from crm_api.platform.link_status import LinkBoard
from crm_api.platform.metrics import Metrics, serving
from crm_api.platform.realtime.bus import Bus, InProcessBus, RedisBus
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.settings import Settings

log = logging.getLogger(__name__)

# Features that run beside the API (call events, SMS outbox, reminders) plug in here:
# each gets the Services at start-up and returns a coroutine to stop it.
Feature = Callable[[Services], Awaitable[Callable[[], Awaitable[None]]]]


@contextlib.asynccontextmanager
async def running_services(
    settings: Settings, metrics: Metrics | None = None, *, sockets: bool = True
) -> AsyncIterator[Services]:
    """`sockets`: this process serves WebSockets (the API), so its hub reads every frame any
    process publishes to hand it to them; a headless process only publishes, and reading
    (and decoding) every pop and status frame of the deployment would be CPU for nothing."""
    metrics = metrics or Metrics()
    engine = make_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url, protocol=2) if settings.redis_url else None
    backlog = settings.ws_backlog * 10
    bus: Bus = RedisBus(redis, backlog=backlog) if redis is not None else InProcessBus(backlog)
    hub = Hub(bus, published=metrics.frame_published)
    metrics.ws_clients.set_function(lambda: hub.sockets)
    if sockets:
        await hub.start()
    services = Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        reads=make_read_sessionmaker(engine),
        hub=hub,
        link_status=LinkBoard(settings, hub, redis),
        redis=redis,
        metrics=metrics,
        login_throttle=LoginThrottle(redis),
    )
    try:
        yield services
    finally:
        for task in list(services.background):
            task.cancel()
        await hub.stop()
        await bus.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


@contextlib.asynccontextmanager
async def running_features(
    services: Services, features: tuple[Feature, ...]
) -> AsyncIterator[None]:
    stops = []
    try:
        for start in features:
            stops.append(await start(services))
        yield
    finally:
        for stop in reversed(stops):
            await stop()


# How a headless process runs its features: all the time, or while it holds a lease.
Runner = Callable[[Services, tuple[Feature, ...], asyncio.Event], Awaitable[None]]


async def run_until_stopped(
    services: Services, features: tuple[Feature, ...], stop: asyncio.Event
) -> None:
    async with running_features(services, features):
        await stop.wait()


async def run_headless(
    settings: Settings,
    features: tuple[Feature, ...],
    stop: asyncio.Event | None = None,
    runner: Runner = run_until_stopped,
) -> None:
    """Runs `features` until SIGINT/SIGTERM (or `stop`), with metrics on
    CALLCARD_METRICS_BIND."""
    if not settings.redis_url:
        log.warning("CALLCARD_REDIS_URL is not set: frames from this process reach no browser")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with running_services(settings, sockets=False) as services:
        with serving(services.metrics, settings.metrics_bind):
            await runner(services, features, stop)
