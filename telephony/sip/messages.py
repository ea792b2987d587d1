"""What a bridge worker and its pool say to each other: typed, one JSON object a line.

The worker only executes SIP/media commands on legs and reports what happened to them;
it knows nothing of calls, routing or the CRM. Leg ids are the pool's for the legs it
dials and the worker's (`i<n>`) for the INVITEs it receives."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# ---- worker -> pool: what happened (`at` is the worker's time.time())


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    address: str  # host:port the worker listens on
    pid: int
    max_calls: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Incoming:
    leg: str
    at: float
    caller: str | None  # user part of From; None when withheld
    caller_name: str | None
    did: str | None  # user part of To
    sip_call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    leg: str
    at: float
    code: int  # 180 / 183 of a dialled leg


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    leg: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Ended:
    """The leg is gone: its final response (unanswered) or its BYE (code 200)."""

    leg: str
    at: float
    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """An INVITE turned away before it became a leg (capacity, unusable offer)."""

    at: float
    code: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """The registration at the provider changed: `active` after a 2xx, else why not."""

    at: float
    active: bool
    code: int
    reason: str


# ---- pool -> worker: what to do


@dataclass(frozen=True, slots=True, kw_only=True)
class Ring:
    leg: str  # 180 Ringing to an incoming leg


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial:
    leg: str  # the pool's id for the new outgoing leg
    uri: str
    # The leg of the same call, if any: a call counts once against the worker's capacity.
    pair: str | None = None
    caller: str | None = None  # shown to the dialled phone (From user)
    caller_name: str | None = None
    reference: str | None = None  # the trunk leg's Call-ID, as X-Callcard-Reference


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    leg: str  # 200 OK to an incoming leg


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge:
    """Both legs' audio to each other and, mixed, into a WAV (final when either ends)."""

    a: str
    b: str
    recording: str  # file name inside the worker's recordings directory


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup:
    """Final response `code` to an unanswered incoming leg, CANCEL to an unanswered
    outgoing one, BYE to an answered one."""

    leg: str
    code: int = 480


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    pass


WorkerEvent = Ready | Incoming | Progress | Answered | Ended | Refused | Registration
Command = Ring | Dial | Answer | Bridge | Hangup | Stop
_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        *(Ready, Incoming, Progress, Answered, Ended, Refused, Registration),
        *(Ring, Dial, Answer, Bridge, Hangup, Stop),
    )
}


class BadMessage(ValueError):
    pass


def encode(message: WorkerEvent | Command) -> bytes:
    data = {"type": type(message).__name__, **dataclasses.asdict(message)}
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> WorkerEvent | Command:
    try:
        data = json.loads(line)
        cls = _TYPES[data.pop("type")]
        message: WorkerEvent | Command = cls(**data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadMessage(f"not a bridge message: {line[:80]!r}") from exc
    return message
