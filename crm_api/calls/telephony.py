"""The PBX link inside Callcard: the AMI adapter feeding the call-event stream, the PBX
used by click-to-call, and the FastAGI server answering the routing policy.

Runs in `callcard telephony` (one per PBX) or inside `callcard run` when
CALLCARD_AMI_URL is set. The adapter only appends to the durable call-event stream; the
API workers consume it, so a restart of either loses nothing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from crm_api.calls.partitions import CallAppender
from crm_api.calls.pipeline import (
    CALL_EVENTS_STREAM,
    CallEventSink,
    SpooledCallEventSink,
    make_stream,
)
from crm_api.calls.reconcile import CarriedCalls, LastHeard, Reconciler
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services
from crm_api.platform.realtime.spool import SpooledAppender
from crm_api.platform.settings import host_port
from crm_api.schedules.routing_state import choose_extension
from telephony import events as ev
from telephony.ami.adapter import AmiAdapter, parse_ami_url
from telephony.ami.agi import AgiRequest, FastAgiServer, Router
from telephony.ami.devices import DeviceStates

log = logging.getLogger(__name__)


async def route_target(
    services: Services,
    *,
    caller: str | None,
    did: str | None,
    call_id: str,
    attempt: int | None = None,
    devices: DeviceStates | None = None,
) -> str:
    """The routing policy's answer for one ask: an extension or `queue:<name>`. Phones
    ringing or talking on the PBX, and those just offered a call, count as busy."""
    settings = services.settings
    decision = await choose_extension(
        services.engine,
        services.sessions,
        services.redis,
        caller=caller or "",
        did=did,
        pbx=settings.pbx_name,
        call_id=call_id,
        now=utcnow(),
        attempt=attempt,
        tz=settings.tz,
        region=settings.default_region,
        fallback=settings.routing_fallback,
        busy_extensions=devices.busy() if devices is not None else frozenset(),
    )
    if devices is not None and decision.extension is not None:
        devices.offered(decision.extension)
    log.info("call %s from %s → %s (%s)", call_id, caller, decision.target, decision.reason)
    return decision.target


def routing_answer(
    services: Services,
    journal: Callable[[list[ev.CallEvent]], None] | None = None,
    devices: DeviceStates | None = None,
) -> Router:
    """The routing policy, as the FastAGI server asks it. `journal` gets each routed call,
    so it reaches the call journal even if its AMI events are missed; `devices` are the
    PBX's phones, busy while they ring or talk."""

    async def route(request: AgiRequest) -> str | None:
        if journal is not None:
            journal([_routed(request)])
        return await route_target(
            services,
            caller=request.caller,
            did=request.did,
            call_id=request.call_id,
            devices=devices,
        )

    return route


def _routed(request: AgiRequest) -> ev.CallRouted:
    return ev.CallRouted(
        call_id=request.call_id,
        at=utcnow(),
        caller=request.caller,
        caller_name=request.caller_name,
        did=request.did,
    )


async def start_telephony(services: Services) -> Callable[[], Awaitable[None]]:
    settings = services.settings
    if not settings.ami_url:
        raise RuntimeError("CALLCARD_AMI_URL is not set: there is no PBX to connect to")
    # What has started is stopped again, in reverse, if a later step fails (an AGI port
    # already taken must not leave a PBX link reconnecting in a process that did not start).
    async with contextlib.AsyncExitStack() as started:
        sink: Callable[[ev.CallEvent], Awaitable[None]]
        carried: CarriedCalls | None = None
        if services.redis is not None:
            partitions = CallAppender(
                services.redis, CALL_EVENTS_STREAM, partitions=settings.call_partitions
            )
            appender = SpooledAppender(
                services.redis,
                CALL_EVENTS_STREAM,
                settings.spool_dir / "call-events",
                memory_limit=settings.spool_memory_events,
                route=partitions.stream_of,
            )
            await appender.start()
            started.push_async_callback(appender.stop)
            spooled = SpooledCallEventSink(appender, pbx=settings.pbx_name)
            url = parse_ami_url(settings.ami_url)
            carried = CarriedCalls(services.redis, f"{url.host}:{url.port}", pbx=settings.pbx_name)

            async def sink(event: ev.CallEvent) -> None:
                assert carried is not None
                carried.note(event)
                await spooled(event)
        else:
            sink = CallEventSink(make_stream(services), pbx=settings.pbx_name)
        reconciler: Reconciler | None = None

        async def after_resync(listed_at: datetime, last_heard: datetime | None) -> None:
            assert reconciler is not None
            await reconciler.after_resync(listed_at, last_heard)

        adapter = AmiAdapter(
            settings.ami_url,
            sink,
            outbound_context=settings.ami_outbound_context,
            on_resync=after_resync,
        )
        heard = LastHeard(
            services.redis,
            adapter.status.url,
            # Linked, the PBX would have told us of any end until now.
            lambda: datetime.now(UTC) if adapter.connected else None,
        )
        reconciler = Reconciler(
            services.sessions,
            adapter.emit,
            lambda: adapter.translator.live_calls,
            pbx=settings.pbx_name,
            last_heard=heard,
            carried=carried,
            max_call_s=settings.call_max_s,
            sweep_every_s=settings.call_sweep_every_s,
        )
        await reconciler.start()
        try:
            await adapter.start()
        except BaseException:
            await reconciler.stop()
            raise

        async def stop_pbx_link() -> None:
            services.links.pbx = None
            await reconciler.stop()  # before the link: a last sweep still reaches the sink
            await adapter.stop()

        started.push_async_callback(stop_pbx_link)
        services.links.pbx = adapter
        gauges = services.metrics.telephony
        gauges.ami_up.set_function(lambda: services.links.pbx is adapter and adapter.connected)
        gauges.calls_in_progress.set_function(
            lambda: adapter.translator.live_count if services.links.pbx is adapter else 0
        )
        # Every user whose calls depend on the link sees it go down and come back.
        started.callback(await services.link_status.watch("pbx", lambda: adapter.connected))
        agi = FastAgiServer(
            routing_answer(services, adapter.emit, adapter.devices),
            fallback=settings.routing_fallback,
            decide_within=settings.agi_decide_within,
        )
        await agi.start(*host_port(settings.agi_bind))
        started.push_async_callback(agi.stop)
        stops = started.pop_all()
    return stops.aclose
