"""The SIP bridge inside Callcard: a pool of pjsua2 workers answering the SIP trunk,
feeding the same durable call-event stream as the AMI adapter, asking the same routing
policy as the FastAGI server, and serving click-to-call as the PBX.

Runs in `callcard sip` (N workers, behind Kamailio) or inside `callcard run` (one worker)
when CALLCARD_SIP_BIND is set. Recordings are written to CALLCARD_RECORDINGS_DIR, where
the call-event service finds them as it finds Asterisk's."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crm_api.accounts import service as accounts
from crm_api.calls.pipeline import CallEventSink, make_stream
from crm_api.calls.reconcile import CarriedCalls, LastHeard, Reconciler, ended, live_in_journal
from crm_api.calls.telephony import route_target
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services
from crm_api.platform.settings import host_port
from telephony import events as ev
from telephony.sip.config import ProviderLogin
from telephony.sip.machine import AskRoute, Phone
from telephony.sip.pool import PoolConfig, Router, SipPool

log = logging.getLogger(__name__)
BRIDGE_RESTARTED = "bridge_restarted"


def call_prefix(sip_bind: str) -> str:
    """The start of every call id of the bridge listening at `sip_bind`: the same after a
    restart, so the next process finds the calls the dead one carried."""
    return f"sip-{hashlib.sha256(sip_bind.encode()).hexdigest()[:8]}-"


def sip_router(services: Services) -> Router:
    async def route(ask: AskRoute) -> str | Phone | None:
        # Each attempt of a call is its own ask: the next one offers a manager not yet tried.
        target = await route_target(
            services, caller=ask.caller, did=ask.did, call_id=ask.call_id, attempt=ask.attempt
        )
        if target.startswith("queue:") or ":" in target:
            return target
        # A manager with a SIP URI on their profile is rung there, not at the registrar.
        async with services.sessions() as session:
            uri = await accounts.sip_address_of(session, target)
        return Phone(extension=target, uri=uri) if uri else target

    return route


def pool_config(services: Services, workers: int) -> PoolConfig:
    settings = services.settings
    if not settings.sip_bind:
        raise RuntimeError("CALLCARD_SIP_BIND is not set (host:port of the first worker)")
    host, port = host_port(settings.sip_bind)
    login = None
    if settings.sip_registrar:
        login = ProviderLogin(
            registrar=settings.sip_registrar,
            username=settings.sip_username,
            password=settings.sip_password.get_secret_value(),
            retry_s=settings.sip_register_retry,
        )
    return PoolConfig(
        recordings_dir=settings.recordings_dir.resolve(),
        host=host,
        port=port,
        workers=workers,
        phone_uri=settings.sip_phone_uri,
        trunk_uri=settings.sip_trunk_uri,
        ring_timeout_s=settings.sip_ring_timeout,
        max_attempts=settings.sip_max_attempts,
        route_within_s=settings.sip_route_within,
        call_prefix=call_prefix(settings.sip_bind),
        login=login,
    )


async def start_sip(services: Services, *, workers: int = 1) -> Callable[[], Awaitable[None]]:
    config = pool_config(services, workers)
    pbx_name = services.settings.pbx_name
    sink = CallEventSink(make_stream(services), pbx=pbx_name)
    carried: CarriedCalls | None = None
    pool_sink: Callable[[ev.CallEvent], Awaitable[None]] = sink
    if services.redis is not None:
        # Written down as the AMI side writes its own: an AMI link's resync under the same
        # PBX name leaves the bridge's calls alone.
        carried = CarriedCalls(services.redis, config.call_prefix, pbx=pbx_name)

        async def pool_sink(event: ev.CallEvent) -> None:
            assert carried is not None
            carried.note(event)
            await sink(event)

    pool = SipPool(config, pool_sink, sip_router(services))
    # While the bridge runs it is "heard" every second: a successor after kill -9 ends
    # the calls it carried at about when it died.
    last_heard = LastHeard(services.redis, config.call_prefix, utcnow)
    died_at = await last_heard.before()
    started = utcnow()
    await pool.start()
    await end_orphans(services, pool_sink, config.call_prefix, started_before=started, at=died_at)
    # Keeps the last-heard time and the carried calls, and sweeps the bridge's own calls
    # that outlived CALLCARD_CALL_MAX_S (no other PBX's process ends them).
    reconciler = Reconciler(
        services.sessions,
        pool.emit,
        lambda: (),
        pbx=pbx_name,
        id_prefix=config.call_prefix,
        last_heard=last_heard,
        carried=carried,
        max_call_s=services.settings.call_max_s,
        sweep_every_s=services.settings.call_sweep_every_s,
    )
    await reconciler.start()
    services.links.pbx = pool
    gauges = PoolMetrics(pool)
    services.metrics.registry.register(gauges)
    # Users see the bridge go down (every worker dead, or the provider refusing it) and back.
    unwatch = await services.link_status.watch("pbx", lambda: pool.up)

    async def stop() -> None:
        unwatch()
        services.links.pbx = None
        services.metrics.registry.unregister(gauges)
        await reconciler.stop()  # before the pool: a last sweep still reaches the sink
        await pool.stop()
        if carried is not None:
            await carried.write()  # the ends of the calls the stop hung up

    return stop


class PoolMetrics(Collector):
    """The pool's figures, per worker process, read at each scrape (also from the metrics
    server's thread: plain attributes the pool sets)."""

    def __init__(self, pool: SipPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        labels = ["worker"]
        in_progress = GaugeMetricFamily(
            "callcard_sip_calls_in_progress", "Calls a SIP bridge worker carries", labels=labels
        )
        capacity = GaugeMetricFamily(
            "callcard_sip_call_capacity",
            "Calls a SIP bridge worker takes at most (0 while it is down)",
            labels=labels,
        )
        refused = CounterMetricFamily(
            "callcard_sip_refused_calls",
            "INVITEs a SIP bridge worker answered 503 because it was full",
            labels=labels,
        )
        failed = CounterMetricFamily(
            "callcard_sip_failed_calls",
            "Calls ended as failed because their SIP bridge worker died",
            labels=labels,
        )
        max_calls = self._pool.config.max_calls
        for worker in self._pool.status.workers:
            at = [worker.address]
            in_progress.add_metric(at, worker.calls)
            capacity.add_metric(at, max_calls if worker.alive else 0)
            refused.add_metric(at, worker.refused)
            failed.add_metric(at, worker.failed_calls)
        yield from (in_progress, capacity, refused, failed)


async def end_orphans(
    services: Services,
    sink: Callable[[ev.CallEvent], Awaitable[None]],
    prefix: str,
    *,
    started_before: datetime,
    at: datetime | None,
) -> None:
    """Ends the calls a previous process of this bridge left live (it was killed): no worker
    of it survives its pool, so none of them is still up. The end goes through the stream
    like any other, so the journal, the follow-ups and the operators' screens see it once.
    Only this bridge's: its PBX name's calls whose ids start with its prefix."""
    orphans = await live_in_journal(
        services.sessions,
        pbx=services.settings.pbx_name,
        started_before=started_before,
        id_prefix=prefix,
    )
    level = logging.WARNING if orphans else logging.INFO
    log.log(level, "ending %d call(s) left live by this SIP bridge's last process", len(orphans))
    for call in orphans:
        await sink(ended(call, at=at or call.latest, reason=BRIDGE_RESTARTED))
