"""The AMI events the call translator reads, as typed records.

This is the boundary: the wire's header strings are read here, once, into frozen
dataclasses, and the translator's state machine works on fields only. `decode` returns
None for events that say nothing about calls (DeviceStateChange, RTCP...).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from telephony.ami.frames import Event


@dataclass(frozen=True, slots=True)
class Leg:
    """A channel as every channel event shows it (or its `Dest*` twin)."""

    channel: str  # PJSIP/trunk-00000000, Local/101@agents-00000001;1
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    caller_num: str | None
    caller_name: str | None
    state: str  # ChannelStateDesc: Down, Ring, Ringing, Up...


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    name: str  # the AMI event name
    stamp: datetime | None  # the Timestamp header, when Asterisk sends one


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRecord(Record):
    """An event about one channel: Newchannel, NewCallerid, and any other (setup
    events and the ones that only release a held CallStarted)."""

    leg: Leg


@dataclass(frozen=True, slots=True, kw_only=True)
class Newexten(ChannelRecord):
    application: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VarSet(ChannelRecord):
    variable: str  # without the inheritance underscores
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Record):
    """DialBegin / DialEnd. `leg` is None for an Originate dialling its first party."""

    leg: Leg | None
    dest: Leg
    status: str  # DialEnd: ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL
    dial_string: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge(ChannelRecord):
    """BridgeEnter / BridgeLeave."""

    bridge: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup(ChannelRecord):
    cause: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer(Record):
    """BlindTransfer / AttendedTransfer."""

    ok: bool
    linkedid: str  # the call whose client leg moves
    from_channel: str
    to_extension: str  # blind: the dialled extension
    to_channel: str  # attended: the target's channel


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateResult(Record):
    action_id: str
    ok: bool
    reason: int
    uniqueid: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRecord(ChannelRecord):
    """QueueCallerJoin / QueueCallerAbandon / AgentConnect of the caller's channel."""

    queue: str
    hold_s: float | None  # HoldTime: the caller's wait in the queue (Abandon, AgentConnect)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cdr(Record):
    uniqueid: str
    duration: float
    billsec: float
    answered: bool
    destination: str  # DestinationChannel: the dialled leg (an agent's phone), or ""
    # The PBX's wall clock (its own zone, naive); only differences are used.
    started: datetime | None
    answered_at: datetime | None
    ended: datetime | None


@dataclass(frozen=True, slots=True)
class ShownChannel:
    """One CoreShowChannel row."""

    leg: Leg
    bridge: str | None
    duration_s: int | None = None  # how long the channel has existed
    bridged_s: int | None = None  # how long it has been bridged, where the PBX says


def number(value: str) -> str | None:
    return None if value in ("", "<unknown>", "<null>") else value


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def _float(value: str) -> float | None:
    try:
        return float(value or 0)
    except ValueError:
        return None


def leg(event: Event, prefix: str = "") -> Leg | None:
    # A record reads most of the snapshot: one split beats a search per header.
    get = event.headers.get
    uniqueid = get(prefix + "Uniqueid")
    if not uniqueid:
        return None
    return Leg(
        channel=get(prefix + "Channel", ""),
        uniqueid=uniqueid,
        linkedid=get(prefix + "Linkedid") or uniqueid,
        context=get(prefix + "Context", ""),
        exten=get(prefix + "Exten", ""),
        caller_num=number(get(prefix + "CallerIDNum", "")),
        caller_name=number(get(prefix + "CallerIDName", "")),
        state=get(prefix + "ChannelStateDesc", ""),
    )


def _cdr_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def stamp_of(event: Event) -> datetime | None:
    value = event.get("Timestamp")
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        return None


def decode(event: Event) -> Record | None:
    name = event.name
    stamp = stamp_of(event)
    if name in ("DialBegin", "DialEnd"):
        dest = leg(event, "Dest")
        if dest is None:
            return None
        return Dial(
            name=name,
            stamp=stamp,
            leg=leg(event),
            dest=dest,
            status=event.get("DialStatus"),
            dial_string=event.get("DialString"),
        )
    if name == "OriginateResponse":
        uniqueid = number(event.get("Uniqueid"))
        return OriginateResult(
            name=name,
            stamp=stamp,
            action_id=event.get("ActionID"),
            ok=event.get("Response") == "Success",
            reason=_int(event.get("Reason"), -1),
            uniqueid=uniqueid,
        )
    if name == "Cdr":
        duration, billsec = _float(event.get("Duration")), _float(event.get("BillableSeconds"))
        if duration is None or billsec is None:
            return None
        return Cdr(
            name=name,
            stamp=stamp,
            uniqueid=event.get("UniqueID") or event.get("Uniqueid"),
            duration=duration,
            billsec=billsec,
            answered=event.get("Disposition") == "ANSWERED",
            destination=event.get("DestinationChannel"),
            started=_cdr_time(event.get("StartTime")),
            answered_at=_cdr_time(event.get("AnswerTime")),
            ended=_cdr_time(event.get("EndTime")),
        )
    if name == "BlindTransfer":
        return Transfer(
            name=name,
            stamp=stamp,
            ok=event.get("Result", "Success") == "Success",
            linkedid=event.get("TransfereeLinkedid"),
            from_channel=event.get("TransfererChannel"),
            to_extension=event.get("Extension"),
            to_channel="",
        )
    if name == "AttendedTransfer":
        return Transfer(
            name=name,
            stamp=stamp,
            ok=event.get("Result", "Success") == "Success",
            linkedid=event.get("OrigTransfererLinkedid") or event.get("TransfereeLinkedid"),
            from_channel=event.get("OrigTransfererChannel"),
            to_extension="",
            to_channel=event.get("TransferTargetChannel"),
        )
    channel = leg(event)
    if channel is None or not event.get("Linkedid"):
        return None
    if name == "Newexten":
        return Newexten(name=name, stamp=stamp, leg=channel, application=event.get("Application"))
    if name == "VarSet":
        return VarSet(
            name=name,
            stamp=stamp,
            leg=channel,
            variable=event.get("Variable").lstrip("_"),
            value=event.get("Value"),
        )
    if name in ("BridgeEnter", "BridgeLeave"):
        return Bridge(name=name, stamp=stamp, leg=channel, bridge=event.get("BridgeUniqueid"))
    if name in ("QueueCallerJoin", "QueueCallerAbandon", "AgentConnect"):
        return QueueRecord(
            name=name,
            stamp=stamp,
            leg=channel,
            queue=event.get("Queue"),
            hold_s=_float(event.get("HoldTime")) if event.get("HoldTime") else None,
        )
    if name == "Hangup":
        return Hangup(name=name, stamp=stamp, leg=channel, cause=_int(event.get("Cause")))
    return ChannelRecord(name=name, stamp=stamp, leg=channel)


def shown_channel(row: Event) -> ShownChannel | None:
    channel = leg(row)
    if channel is None:
        return None
    return ShownChannel(
        channel,
        row.get("BridgeId") or None,
        duration_s=_hms(row.get("Duration")),
        bridged_s=_hms(row.get("BridgedDuration")),
    )


def _hms(value: str) -> int | None:
    """`00:01:05` (Asterisk's Duration) or plain seconds; None when absent or garbled."""
    parts = value.strip().split(":")
    if not value.strip() or len(parts) > 3 or not all(p.isdigit() for p in parts):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds
