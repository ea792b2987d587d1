"""The durable path of call events: PBX adapter → event stream → call-event service.

With Redis the stream is a Redis Stream read by one consumer group, so an event is
acknowledged only after its database commit and survives an API restart; embedded, it is
an in-process queue. Either way the adapter only appends; it never waits on the CRM."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from crm_api.calls import codec
from crm_api.calls.service import CallService, MissedCallHook
from crm_api.platform.deps import Services
from crm_api.platform.realtime.streams import EventStream, RedisStream
from telephony import events as ev
from telephony.events import CallEvent

log = logging.getLogger(__name__)
CALL_EVENTS_STREAM = "callcard:call-events"
# Few runs at once keep each turn of the event loop short, so a ring read off the stream
# is pushed at once (50 calls/s, 1M clients: pop p99 24 ms with 8, 10 ms with 3).
CALL_RUNS_IN_FLIGHT = 3


class CallEventSink:
    """What a PBX adapter hands its events to."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream

    async def __call__(self, event: CallEvent) -> None:
        await self.stream.add(codec.encode(event))


def make_stream(
    services: Services, on_read: Callable[[dict[str, Any]], None] | None = None
) -> EventStream:
    if services.redis is not None:
        return RedisStream(
            services.redis,
            CALL_EVENTS_STREAM,
            group="calls",
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

    def ring_ahead(data: dict[str, Any]) -> None:
        # A ring is pushed as it is read, not after the call's earlier runs are written.
        if data.get("type") == "CallRinging":
            try:
                event = codec.decode(data)
            except (codec.UnknownEvent, TypeError, ValueError, KeyError):
                return  # the run drops it
            if isinstance(event, ev.CallRinging):
                service.ring_ahead(event)

    stream = make_stream(services, on_read=ring_ahead)

    async def handle(run: list[dict[str, Any]]) -> None:
        events = []
        for data in run:
            try:
                events.append(codec.decode(data))
            except (codec.UnknownEvent, TypeError, ValueError, KeyError):
                # Acknowledged with the rest: a garbage entry must not stop the pipeline.
                log.error("dropping an undecodable call event: %r", data)
        await service.handle(events)

    stop = asyncio.Event()
    task = asyncio.create_task(stream.consume(handle, stop), name="call-events")

    async def shutdown() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()

    return shutdown
