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
    """How a call ended, as a supervisor counts it. Every inbound call that is not
    answered nor failed is a missed call that someone must call back."""

    ANSWERED = "answered"
    MISSED = "missed"  # nobody answered: rang out, or the queue timed out
    BUSY = "busy"
    ABANDONED = "abandoned"  # the caller hung up before anyone answered
    FAILED = "failed"  # could not be made: congestion, unreachable, no route


class Unanswered(enum.StrEnum):
    """Why an unanswered call was not answered: the detail under its disposition."""

    NO_ANSWER = "no_answer"  # MISSED: phones rang out
    QUEUE_TIMEOUT = "queue_timeout"  # MISSED: the queue's own timeout, rung or not
    ABANDONED_RINGING = "abandoned_ringing"  # ABANDONED: hung up while a phone rang
    ABANDONED_QUEUE = "abandoned_queue"  # ABANDONED: hung up waiting in a queue
    ABANDONED_EARLY = "abandoned_early"  # ABANDONED: hung up before anything rang
    BUSY = "busy"  # BUSY


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    call_id: str
    at: datetime
    # Set by adapters for originated calls: the CRM's own id (channel variable CRM_CALL_ID).
    crm_call_id: str | None = None
    # The PBX that carried the call (its CALLCARD_PBX_NAME), stamped as the event is sent:
    # two PBXs may reuse one call id, so a call is (pbx, call_id). None: the default PBX.
    pbx: str | None = None


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
class CallDialling(CallEvent):
    """Click-to-call: the manager picked up, and the client's number is being dialled."""

    agent: str | None
    number: str | None


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
    # The caller's wait: from the start until answered, or until the caller left
    # unanswered, over every attempt (dial retries, queue rounds; the queue's HoldTime).
    ring_s: float = 0.0
    talk_s: float = 0.0  # from first answer until end
    agents: tuple[str, ...] = field(default=())  # every extension that talked, in order
    answered_by: str | None = None  # the first extension that answered
    unanswered: Unanswered | None = None  # why, when nobody answered (not FAILED)
    queue: str | None = None  # the queue the caller waited in, if any
    caller_name: str | None = None  # CallerIDName as the PBX decoded it
    talk_by_agent: dict[str, float] = field(default_factory=dict)  # extension -> seconds
    # Set when the adapter ended the call itself because the PBX can no longer tell:
    # "gone_at_reconnect" (not listed by the PBX after a reconnect) or "no_events" (silent
    # for longer than any real call lasts). The times are then the best known.
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRouted(CallEvent):
    """The routing server (FastAGI) answered for this call: it exists even if none of its
    PBX events ever arrive (the AMI link was down)."""

    caller: str | None
    caller_name: str | None = None
    did: str | None = None
    target: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateFailed(CallEvent):
    """An Originate the CRM asked for could not reach its first party."""

    reason: str  # extension_offline | agent_no_answer | agent_busy | pbx_unreachable | failed


AnyCallEvent = (
    CallStarted
    | CallRinging
    | CallAnswered
    | CallDialling
    | CallTransferred
    | RecordingStarted
    | CallEnded
    | CallRouted
    | OriginateFailed
)
