"""Typed call events as the PBX adapters emit them, for tests of the call-event service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from crm_api.calls.partitions import CallAppender, PartitionedStream
from crm_api.calls.pipeline import CALL_EVENTS_STREAM, CallEventSink, make_stream
from crm_api.platform.deps import Services
from telephony import events as ev
from telephony.ami.adapter import AmiAdapter

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def call_sink(services: Services, pbx: str | None = None) -> CallEventSink:
    """The way into a running API's call-event stream, as a PBX adapter has it (the
    API's own PBX's, or `pbx`'s)."""
    return CallEventSink(make_stream(services), pbx=pbx or services.settings.pbx_name)


def appending_sink(redis: Redis, partitions: int, pbx: str = "pbx") -> CallEventSink:
    """What `callcard telephony` does: it only appends, each call to its partition's stream."""
    appender = CallAppender(redis, CALL_EVENTS_STREAM, partitions=partitions)
    return CallEventSink(appender, pbx=pbx)


async def call_event_groups(redis: Redis, partitions: int) -> list[dict[str, Any]]:
    """The consumer groups of the partitions' streams (XINFO GROUPS), of those that exist."""
    groups: list[dict[str, Any]] = []
    for stream in CallAppender(redis, CALL_EVENTS_STREAM, partitions=partitions).streams():
        try:
            groups += await redis.xinfo_groups(stream)
        except ResponseError as exc:
            if "no such key" not in str(exc):
                raise
    return groups


async def handled(services: Services) -> bool:
    """Every call event added so far was handled by the running API's pipeline, and
    acknowledged after its commit: none unread, none in hand, no partition unread."""
    (stream,) = [s for s in services.links.consumers if s.name == CALL_EVENTS_STREAM]
    if isinstance(stream, PartitionedStream) and len(stream.owned) < stream.partitions:
        return False
    backlog = await stream.backlog()
    return backlog.pending == 0 and backlog.unread == 0


async def pbx_handled(services: Services) -> bool:
    """Every event the PBX has sent so far was read by the running API's AMI adapter (the
    answer to a command asked now comes after them), reached the call-event stream and
    was handled there: "nothing else is on its way", shown by signals, not a quiet time."""
    adapter = services.links.pbx
    assert isinstance(adapter, AmiAdapter)
    await adapter.command("core show version")
    await adapter.drain()
    return await handled(services)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def answered_call(
    call_id: str, caller: str = "89161234567", agent: str = "101", caller_e164: str = "+79161234567"
) -> list[ev.CallEvent]:
    """An inbound call that rings `agent`, is answered after 2 s, talks 3 s, recorded."""
    return [
        ev.CallStarted(
            call_id=call_id,
            at=at(0),
            direction=ev.Direction.INBOUND,
            caller=caller,
            callee="74951234567",
            did="74951234567",
            caller_name="Иван",
        ),
        ev.RecordingStarted(
            call_id=call_id, at=at(0.1), file=f"/var/spool/asterisk/monitor/{call_id}.wav"
        ),
        ev.CallRinging(call_id=call_id, at=at(0.2), agent=agent, caller=caller_e164),
        ev.CallAnswered(call_id=call_id, at=at(2.2), agent=agent),
        ev.CallEnded(
            call_id=call_id,
            at=at(5.2),
            direction=ev.Direction.INBOUND,
            disposition=ev.Disposition.ANSWERED,
            cause=16,
            caller=caller_e164,
            callee="74951234567",
            ring_s=2.2,
            talk_s=3.0,
            agents=(agent,),
            answered_by=agent,
        ),
    ]


def answered_end(
    call_id: str, at: datetime, agent: str, *, ring_s: float, talk_s: float
) -> ev.CallEnded:
    """The end of an inbound call `agent` answered (normal clearing)."""
    return ev.CallEnded(
        call_id=call_id,
        at=at,
        direction=ev.Direction.INBOUND,
        disposition=ev.Disposition.ANSWERED,
        cause=16,
        ring_s=ring_s,
        talk_s=talk_s,
        agents=(agent,),
        answered_by=agent,
    )
