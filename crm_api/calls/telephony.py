"""The PBX link inside Callcard: the AMI adapter feeding the call-event stream, the PBX
used by click-to-call, and the FastAGI server answering the routing policy.

Runs in `callcard telephony` (one per PBX) or inside `callcard run` when
CALLCARD_AMI_URL is set. The adapter only appends to the durable call-event stream; the
API workers consume it, so a restart of either loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from crm_api.calls.pipeline import CallEventSink, make_stream
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services
from crm_api.platform.settings import host_port
from crm_api.schedules.routing import choose_extension
from telephony.ami.adapter import AmiAdapter
from telephony.ami.agi import AgiRequest, FastAgiServer, Router

log = logging.getLogger(__name__)


async def route_target(
    services: Services,
    *,
    caller: str | None,
    did: str | None,
    call_id: str,
    attempt: int | None = None,
) -> str:
    """The routing policy's answer for one ask: an extension or `queue:<name>`."""
    settings = services.settings
    decision = await choose_extension(
        services.sessions,
        services.redis,
        caller=caller or "",
        did=did,
        call_id=call_id,
        now=utcnow(),
        attempt=attempt,
        tz=settings.tz,
        region=settings.default_region,
        fallback=settings.routing_fallback,
    )
    log.info("call %s from %s → %s (%s)", call_id, caller, decision.target, decision.reason)
    return decision.target


def routing_answer(services: Services) -> Router:
    """The routing policy, as the FastAGI server asks it."""

    async def route(request: AgiRequest) -> str | None:
        return await route_target(
            services, caller=request.caller, did=request.did, call_id=request.call_id
        )

    return route


async def start_telephony(services: Services) -> Callable[[], Awaitable[None]]:
    settings = services.settings
    if not settings.ami_url:
        raise RuntimeError("CALLCARD_AMI_URL is not set: there is no PBX to connect to")
    sink = CallEventSink(make_stream(services))
    adapter = AmiAdapter(settings.ami_url, sink, outbound_context=settings.ami_outbound_context)
    await adapter.start()
    services.links.pbx = adapter
    gauges = services.metrics.telephony
    gauges.ami_up.set_function(lambda: services.links.pbx is adapter and adapter.connected)
    gauges.calls_in_progress.set_function(
        lambda: adapter.translator.live_count if services.links.pbx is adapter else 0
    )
    # Every user whose calls depend on the link sees it go down and come back.
    unwatch = await services.link_status.watch("pbx", lambda: adapter.connected)
    agi = FastAgiServer(
        routing_answer(services),
        fallback=settings.routing_fallback,
        decide_within=settings.agi_decide_within,
    )
    await agi.start(*host_port(settings.agi_bind))

    async def stop() -> None:
        unwatch()
        await agi.stop()
        services.links.pbx = None
        await adapter.stop()

    return stop
