"""The durable path of call events: PBX adapter → event stream → call-event service.

With Redis the stream is a Redis Stream partitioned by call id among the live API workers
(calls.partitions), so each call is handled in order by one worker at a time, and an event
is acknowledged only after its database commit and survives an API restart; embedded, it
is an in-process queue. Either way the adapter only appends; it never waits on the CRM."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.calls import codec
from crm_api.calls.consumer import HOT_STATEMENTS, CallService
from crm_api.calls.followup import Picker
from crm_api.calls.models import AnyCall
from crm_api.calls.notifier import CallRingingFrame
from crm_api.calls.partitions import (
    CONSUMER,
    GROUP,
    PartitionedStream,
    partition_of,
    partition_stream,
)
from crm_api.platform.db.base import utcnow
from crm_api.platform.db.direct import compile_ahead
from crm_api.platform.deps import Services
from crm_api.platform.realtime.frames import Frame
from crm_api.platform.realtime.spool import SpooledAppender
from crm_api.platform.realtime.streams import (
    Appender,
    EventStream,
    RedisStream,
    consume_supervised,
    stream_outages,
)
from crm_api.schedules.models import RouteCounter
from crm_api.schedules.routing_state import agents_and_owner
from telephony import events as ev
from telephony.call_context import about_call
from telephony.events import CallEvent

log = logging.getLogger(__name__)
CALL_EVENTS_STREAM = "callcard:call-events"
# Few runs at once keep each turn of the event loop short, so a ring read off the stream
# is pushed at once (50 calls/s, 1M clients: pop p99 24 ms with 8, 10 ms with 3).
CALL_RUNS_IN_FLIGHT = 3


class CallEventSink:
    """What a PBX adapter hands its events to; each is sent as `pbx`'s (CALLCARD_PBX_NAME)."""

    def __init__(self, stream: Appender, *, pbx: str) -> None:
        self.stream = stream
        self.pbx = pbx

    async def __call__(self, event: CallEvent) -> None:
        await self.stream.add(codec.encode(event, pbx=self.pbx))


class SpooledCallEventSink:
    """The sink of `callcard telephony`: never waits on Redis, never drops an event."""

    def __init__(self, appender: SpooledAppender, *, pbx: str) -> None:
        self.appender = appender
        self.pbx = pbx

    async def __call__(self, event: CallEvent) -> None:
        self.appender.add(codec.encode(event, pbx=self.pbx))


def _call_id(event: dict[str, Any]) -> str:
    return str(event.get("call_id", ""))


def make_stream(
    services: Services,
    on_read: Callable[[dict[str, Any]], None] | None = None,
    on_take: Callable[[int], None] | None = None,
) -> EventStream:
    redis = services.redis
    if redis is None:
        return services.links.local_stream(CALL_EVENTS_STREAM)
    settings = services.settings
    partitions = settings.call_partitions
    # Shared by all the partitions this worker holds: runs in flight, and one log line
    # per outage.
    slots = asyncio.Semaphore(CALL_RUNS_IN_FLIGHT)
    outages = stream_outages(CALL_EVENTS_STREAM)

    def partition(p: int) -> RedisStream:
        return RedisStream(
            redis,
            partition_stream(CALL_EVENTS_STREAM, p),
            group=GROUP.format(p),
            consumer=CONSUMER,
            key=_call_id,
            on_read=on_read,
            concurrency=slots,
            outages=outages,
            ack_with_reads=True,  # a replayed call event changes and pushes nothing
        )

    return PartitionedStream(
        redis,
        CALL_EVENTS_STREAM,
        partitions=partitions,
        worker=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        lease_s=settings.call_partition_lease_s,
        consumer=partition,
        on_take=on_take,
    )


CALLBACK_TURN_KEY = "callcard:callback:turn"


def routing_pick(services: Services) -> Picker:
    """Whom the routing policy would ring for this caller now (on duty, free first, round
    robin): the one to call back when the card has no manager."""
    settings = services.settings

    async def pick(session: AsyncSession, call: AnyCall) -> int | None:
        on_duty, _ = await agents_and_owner(
            services.sessions,
            session,
            now=utcnow(),
            tz=settings.tz,
            pbx=call.pbx,
            call_id=call.pbx_call_id or "",
            caller=call.caller or "",
            region=settings.default_region,
        )
        if not on_duty:
            return None
        free = [a for a in on_duty if not a.busy] or on_duty
        return free[await _callback_turn(services, session) % len(free)].user_id

    return pick


async def _callback_turn(services: Services, session: AsyncSession) -> int:
    """The callbacks' own rotation, shared by every worker (Redis, else the database in
    the call's transaction)."""
    if services.redis is not None:
        return int(await services.redis.incr(CALLBACK_TURN_KEY))
    turn = await session.scalar(
        update(RouteCounter)
        .where(RouteCounter.name == "callback")
        .values(value=RouteCounter.value + 1)
        .returning(RouteCounter.value)
    )
    if turn is None:
        session.add(RouteCounter(name="callback", value=1))
        await session.flush()  # the next pick of the same run counts on from it
        return 1
    return int(turn)


async def start_call_events(services: Services) -> Callable[[], Awaitable[None]]:
    settings = services.settings
    compile_ahead(services.engine, HOT_STATEMENTS)  # not during the first calls
    service = CallService(
        services.sessions,
        services.hub,
        region=settings.default_region,
        recordings_dir=settings.recordings_dir,
        tz=settings.tz,
        pick=routing_pick(services),
        pbx=settings.pbx_name,
    )

    gauges = services.metrics.calls

    def note_ring(data: dict[str, Any]) -> None:
        # The pop's latency runs from the ring's append (codec.SENT_AT) to its publishing.
        if data.get("type") == "CallRinging" and isinstance(data.get(codec.SENT_AT), float):
            pbx = str(data.get("pbx") or settings.pbx_name)  # as the call-event service has it
            gauges.ring_read(
                pbx, str(data.get("call_id")), str(data.get("agent")), data[codec.SENT_AT]
            )

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

    def popped(frame: Frame) -> None:
        data = frame.data
        gauges.popped(str(data.get("pbx")), str(data.get("call_id")), str(data.get("agent")))

    unwatch = services.metrics.watch_published(CallRingingFrame.name(), popped)

    def taken(partition: int) -> None:
        # Another worker may have handled its calls' events since this one last did. (A
        # call's key is its PBX and its call id; the stream is partitioned by the id.)
        partitions = services.settings.call_partitions
        service.forget(lambda key: partition_of(key[1], partitions) == partition)

    stream = make_stream(services, on_read=ring_ahead, on_take=taken)
    reads_ahead = isinstance(stream, PartitionedStream)
    if isinstance(stream, PartitionedStream):
        gauges.partitions.set_function(lambda: len(stream.owned))
        services.metrics.refresh_with(functools.partial(_stream_figures, services, stream))

    async def handle(run: list[dict[str, Any]], *, again: bool) -> None:
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
            await service.handle(events, again=again)
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
        unwatch()

    return shutdown


async def _stream_figures(services: Services, stream: PartitionedStream) -> None:
    """Lag and pending of the partitions this worker holds: summed over the workers, the
    whole stream's."""
    gauges = services.metrics.calls
    figures = [(reader.group, await reader.backlog()) for reader in stream.readers()]
    gauges.stream_lag.clear()
    gauges.stream_pending.clear()
    for group, backlog in figures:
        gauges.stream_lag.labels(CALL_EVENTS_STREAM, group).set(backlog.unread)
        gauges.stream_pending.labels(CALL_EVENTS_STREAM, group).set(backlog.pending)
