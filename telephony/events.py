"""The normalized call events: the one contract every PBX adapter emits.

Times are the PBX's own (timezone-aware UTC). `call_id` is the PBX's id of the whole
call (Asterisk's Linkedid), stable across every leg, transfer and queue attempt, so the
CRM can process the events idempotently and keep one communication per client call.
Numbers are as the PBX presents them (after the dialplan normalized them); the CRM turns
them into E.164 with its own default region.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Direction(enum.StrEnum):
    INBOUND = "inbound"  # from a trunk to the company
    OUTBOUND = "outbound"  # from an extension (or an Originate) to a trunk
    INTERNAL = "internal"  # extension to extension


class Disposition(enum.StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"  # rang, nobody answered (timeout / no answer)
    BUSY = "busy"
    ABANDONED = "abandoned"  # the caller hung up before anyone answered
    FAILED = "failed"  # congestion, unreachable, rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    call_id: str
    at: datetime
    # Set by adapters for originated calls: the CRM's own id (channel variable CRM_CALL_ID).
    crm_call_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(CallEvent):
    direction: Direction
    caller: str | None  # number or extension that called; None when withheld
    callee: str | None  # DID dialled, or the external number of an outbound call
    caller_name: str | None = None
    did: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRinging(CallEvent):
    agent: str  # the extension whose phone rings
    caller: str | None = None  # the caller as known at that moment (normalized by dialplan)
    caller_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(CallEvent):
    agent: str | None  # extension that answered; None when an external party answered


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(CallEvent):
    from_agent: str | None
    to_agent: str  # extension (or context target) the call was sent to
    kind: str = "blind"  # blind | attended | redirect


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(CallEvent):
    file: str  # path as the PBX wrote it (MIXMONITOR_FILENAME)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEvent):
    direction: Direction
    disposition: Disposition
    cause: int  # Q.850 cause of the client-facing leg
    cause_text: str = ""
    caller: str | None = None
    callee: str | None = None
    ring_s: float = 0.0  # from start until answer (or end when unanswered)
    talk_s: float = 0.0  # from first answer until end
    agents: tuple[str, ...] = field(default=())  # every extension that talked, in order
    answered_by: str | None = None  # the first extension that answered


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateFailed(CallEvent):
    """An Originate the CRM asked for could not reach its first party."""

    reason: str  # extension_offline | agent_no_answer | agent_busy | pbx_unreachable | failed


AnyCallEvent = (
    CallStarted
    | CallRinging
    | CallAnswered
    | CallTransferred
    | RecordingStarted
    | CallEnded
    | OriginateFailed
)
