"""The durable path of call events: PBX adapter → event stream → call-event service.

With Redis the stream is a Redis Stream read by one consumer group, so an event is
acknowledged only after its database commit and survives an API restart; embedded, it is
an in-process queue. Either way the adapter only appends; it never waits on the CRM."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from crm_api.calls import codec
from crm_api.calls.service import CallService, MissedCallHook
from crm_api.platform.deps import Services
from crm_api.platform.metrics import CallMetrics
from crm_api.platform.realtime.spool import SpooledAppender
from crm_api.platform.realtime.streams import EventStream, RedisStream, consume_supervised
from telephony import events as ev
from telephony.call_context import about_call
from telephony.events import CallEvent

log = logging.getLogger(__name__)
CALL_EVENTS_STREAM = "callcard:call-events"
CALL_GROUP = "calls"
# Few runs at once keep each turn of the event loop short, so a ring read off the stream
# is pushed at once (50 calls/s, 1M clients: pop p99 24 ms with 8, 10 ms with 3).
CALL_RUNS_IN_FLIGHT = 3


class CallEventSink:
    """What a PBX adapter hands its events to."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream

    async def __call__(self, event: CallEvent) -> None:
        await self.stream.add(codec.encode(event))


class SpooledCallEventSink:
    """The sink of `callcard telephony`: never waits on Redis, never drops an event."""

    def __init__(self, appender: SpooledAppender) -> None:
        self.appender = appender

    async def __call__(self, event: CallEvent) -> None:
        self.appender.add(codec.encode(event))


def make_stream(
    services: Services, on_read: Callable[[dict[str, Any]], None] | None = None
) -> EventStream:
    if services.redis is not None:
        return RedisStream(
            services.redis,
            CALL_EVENTS_STREAM,
            group=CALL_GROUP,
            consumer=socket.gethostname(),
            key=lambda event: str(event.get("call_id", "")),
            on_read=on_read,
            concurrency=CALL_RUNS_IN_FLIGHT,
        )
    return services.links.local_stream(CALL_EVENTS_STREAM)


async def start_call_events(
    services: Services, *, on_missed: MissedCallHook | None = None
) -> Callable[[], Awaitable[None]]:
    service = CallService(
        services.sessions,
        services.hub,
        region=services.settings.default_region,
        recordings_dir=services.settings.recordings_dir,
        on_missed=on_missed,
    )

    gauges = services.metrics.calls

    def note_ring(data: dict[str, Any]) -> None:
        # The pop's latency runs from the ring's append (codec.SENT_AT) to its publishing.
        if data.get("type") == "CallRinging" and isinstance(data.get(codec.SENT_AT), float):
            gauges.ring_read(str(data.get("call_id")), str(data.get("agent")), data[codec.SENT_AT])

    def ring_ahead(data: dict[str, Any]) -> None:
        # A ring is pushed as it is read, not after the call's earlier runs are written.
        if data.get("type") == "CallRinging":
            note_ring(data)
            try:
                event = codec.decode(data)
            except (codec.UnknownEvent, TypeError, ValueError, KeyError):
                return  # the run drops it
            if isinstance(event, ev.CallRinging):
                service.ring_ahead(event)

    stream = make_stream(services, on_read=ring_ahead)
    reads_ahead = isinstance(stream, RedisStream)
    if reads_ahead:
        services.metrics.refresh_with(functools.partial(_stream_figures, services, gauges))

    async def handle(run: list[dict[str, Any]]) -> None:
        events = []
        for data in run:
            if not reads_ahead:
                note_ring(data)
            try:
                events.append(codec.decode(data))
            except (codec.UnknownEvent, TypeError, ValueError, KeyError):
                # Acknowledged with the rest: a garbage entry must not stop the pipeline.
                log.error("dropping an undecodable call event: %r", data)
        calls = {event.call_id for event in events}
        # A run is one call's (the stream's key): its log lines say which.
        with about_call(calls.pop() if len(calls) == 1 else None):
            await service.handle(events)
            for event in events:
                gauges.events.labels(type(event).__name__).inc()
                if isinstance(event, ev.CallEnded):
                    log.info(
                        "call ended: %s %s, %s → %s, talk %.0f s",
                        event.direction,
                        event.disposition,
                        event.caller,
                        event.answered_by or event.callee,
                        event.talk_s,
                    )

    stop = asyncio.Event()
    task = asyncio.create_task(consume_supervised(stream, handle, stop), name="call-events")
    services.links.consumers.append(stream)

    async def shutdown() -> None:
        services.links.consumers.remove(stream)
        stop.set()
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()

    return shutdown


async def _stream_figures(services: Services, gauges: CallMetrics) -> None:
    assert services.redis is not None
    groups: Any = await services.redis.xinfo_groups(CALL_EVENTS_STREAM)
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == CALL_GROUP:
            gauges.stream_lag.labels(CALL_EVENTS_STREAM).set(group.get("lag") or 0)
            gauges.stream_pending.labels(CALL_EVENTS_STREAM).set(group["pending"])
