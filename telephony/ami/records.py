"""The AMI events the call translator reads, as typed records.

This is the boundary: the wire's header strings are read here, once, into slotted
dataclasses, and the translator's state machine works on fields only. `decode` returns
None for events that say nothing about calls (DeviceStateChange, RTCP...). A record is
built per event on the adapter's hot path and only read after: the classes are not
frozen, because a frozen dataclass costs about four times as much to build, and the
hot path builds them by position, which costs half of a call by keyword.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from telephony.ami.frames import Event


@dataclass(slots=True)
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


@dataclass(slots=True)
class Record:
    name: str  # the AMI event name
    stamp: datetime | None  # the Timestamp header, when Asterisk sends one


@dataclass(slots=True)
class ChannelRecord(Record):
    """An event about one channel: Newchannel, NewCallerid, and any other (setup
    events and the ones that only release a held CallStarted)."""

    leg: Leg


@dataclass(slots=True)
class Newexten(ChannelRecord):
    application: str


@dataclass(slots=True)
class VarSet(ChannelRecord):
    variable: str  # without the inheritance underscores
    value: str


@dataclass(slots=True)
class Dial(Record):
    """DialBegin / DialEnd. `leg` is None for an Originate dialling its first party."""

    leg: Leg | None
    dest: Leg
    status: str  # DialEnd: ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL
    dial_string: str


@dataclass(slots=True)
class Bridge(ChannelRecord):
    """BridgeEnter / BridgeLeave."""

    bridge: str


@dataclass(slots=True)
class Hangup(ChannelRecord):
    cause: int


@dataclass(slots=True)
class Transfer(Record):
    """BlindTransfer / AttendedTransfer."""

    ok: bool
    linkedid: str  # the call whose client leg moves
    from_channel: str
    to_extension: str  # blind: the dialled extension
    to_channel: str  # attended: the target's channel


@dataclass(slots=True)
class OriginateResult(Record):
    action_id: str
    ok: bool
    reason: int
    uniqueid: str | None


@dataclass(slots=True)
class QueueRecord(ChannelRecord):
    """QueueCallerJoin / QueueCallerAbandon / AgentConnect of the caller's channel."""

    queue: str
    hold_s: float | None  # HoldTime: the caller's wait in the queue (Abandon, AgentConnect)


@dataclass(slots=True)
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


@dataclass(slots=True)
class ShownChannel:
    """One CoreShowChannel row."""

    leg: Leg
    bridge: str | None
    duration_s: int | None = None  # how long the channel has existed
    bridged_s: int | None = None  # how long it has been bridged, where the PBX says


_NO_NUMBER = frozenset({"", "<unknown>", "<null>"})


def number(value: str) -> str | None:
    return None if value in _NO_NUMBER else value


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


_Builder = Callable[[str, "datetime | None", tuple[str, ...]], "Record | None"]


# The patterns below take every value possessively (`[^\r]*+`): a value ends at its line's
# CR, so there is never anything to give back, and the matcher skips the backtracking
# bookkeeping (a tenth of a match, once per event read).


def _snapshot(prefix: str, *, read: bool) -> str:
    """Asterisk writes a channel snapshot as these fourteen lines, in this order
    (manager.c, ast_manager_build_channel_state_string_prefix)."""
    value = r"([^\r]*+)" if read else r"[^\r]*+"
    keyed = r"([^\r]++)" if read else r"[^\r]++"  # Uniqueid and Linkedid: not empty
    lines = [
        ("Channel", value),
        ("ChannelState", r"[^\r]*+"),
        ("ChannelStateDesc", value),
        ("CallerIDNum", value),
        ("CallerIDName", value),
        ("ConnectedLineNum", r"[^\r]*+"),
        ("ConnectedLineName", r"[^\r]*+"),
        ("Language", r"[^\r]*+"),
        ("AccountCode", r"[^\r]*+"),
        ("Context", value),
        ("Exten", value),
        ("Priority", r"[^\r]*+"),
        ("Uniqueid", keyed),
        ("Linkedid", keyed),
    ]
    return r"\r\n".join(f"{prefix}{key}: {pattern}" for key, pattern in lines)


# The snapshot right after the event's name and privilege (Timestamp, SystemName and a
# bridge's snapshot may come between), or the Dest one right after that: no header before
# it has one of its keys, so the values read are those `headers.get` gives. Any other
# layout is read by the header split.
_HEAD = (
    r"Event: [^\r]*+\r\nPrivilege: [^\r]*+\r\n(?:Timestamp: [^\r]*+\r\n)?"
    r"(?:SystemName: [^\r]*+\r\n)?(?:Bridge[^\r]*+\r\n)*"
)
_LAID_OUT = {
    "": re.compile(_HEAD + _snapshot("", read=True) + r"(?:\r\n|\Z)").match,
    "Dest": re.compile(
        _HEAD
        + f"(?:{_snapshot('', read=False)}\\r\\n)?"
        + _snapshot("Dest", read=True)
        + r"(?:\r\n|\Z)"
    ).match,
}


# A Dial event's two snapshots, the caller's and the dialled one's, by one match: the
# same two `_LAID_OUT` gives, whose "Dest" pattern has to match the caller's too.
_DIALLED = re.compile(
    _HEAD + f"(?:{_snapshot('', read=True)}\\r\\n)?" + _snapshot("Dest", read=True) + r"(?:\r\n|\Z)"
).match


def _laid_out(event: Event, prefix: str) -> Leg | None:
    """One match instead of the header split (most of a record's cost): None when the
    snapshot is not laid out as Asterisk writes it, or has no Uniqueid or Linkedid."""
    match = _LAID_OUT[prefix](event.raw)
    return None if match is None else _matched_leg(match.groups())


def _dial_legs(event: Event) -> tuple[Leg | None, Leg | None]:
    """`leg(event)` and `leg(event, "Dest")`, by one match when both are laid out."""
    match = _DIALLED(event.raw)
    if match is None or match.group(1) is None:
        return leg(event), leg(event, "Dest")
    groups = match.groups()
    return _matched_leg(groups[:8]), _matched_leg(groups[8:])


def _matched_leg(groups: tuple[str, ...]) -> Leg:
    channel, state, num, name, context, exten, uniqueid, linkedid = groups
    # In the fields' order, by position (a call by keyword costs twice as much), and the
    # numbers told inline (`number`'s call costs more than its test): once per event.
    return Leg(
        channel,
        uniqueid,
        linkedid,
        context,
        exten,
        None if num in _NO_NUMBER else num,
        None if name in _NO_NUMBER else name,
        state,
    )


def leg(event: Event, prefix: str = "") -> Leg | None:
    laid_out = _laid_out(event, prefix) if prefix in _LAID_OUT else None
    return laid_out or _split_leg(event, prefix)


def _split_leg(event: Event, prefix: str) -> Leg | None:
    # Any layout: the snapshot's headers by name (one split beats a search per header).
    # No Uniqueid (a DeviceStateChange, a Dial's missing caller): no leg, and no split. By
    # search, as a scan for the key would find it in DestUniqueid.
    uniqueid = event.get(prefix + "Uniqueid")
    if not uniqueid:
        return None
    get = event.headers.get
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
    # `2026-12-02 11:40:37`: fromisoformat reads exactly that shape (19 characters, so no
    # zone) many times faster than strptime.
    if len(value) != 19 or value[10] != " ":
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _stamp(event: Event) -> datetime | None:
    # Asterisk sends Timestamp only with `timestampevents = yes`: one scan for its line
    # (with or without a value) says it is absent, which `get` needs two for.
    raw = event.raw
    if "\nTimestamp:" not in raw and not raw.startswith("Timestamp:"):
        return None
    return _stamp_of(event.get("Timestamp", ""))


def _stamp_of(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        return None


# ---------------------------------------------------------------- by layout
# Each event the translator reads often, laid out as Asterisk writes it, is read by one
# match of the whole block, which captures just the fields its record takes: a search
# per header costs more than the match. Its groups: the Timestamp (None when absent),
# then the fields its builder takes after the name and the time. A block laid out any
# other way (another Asterisk, garbage) does not match and is read by `_searched`.
_EVENT_HEAD = (
    r"Event: [^\r]*+\r\nPrivilege: [^\r]*+\r\n(?:Timestamp: ([^\r]*+)\r\n)?"
    r"(?:SystemName: [^\r]*+\r\n)?"
)
_LEG = _snapshot("", read=True)
_DEST_LEG = _snapshot("Dest", read=True)


def _rest(*unread: str) -> str:
    """The lines after the fields read, to the block's end. A Timestamp there, or a
    header read that this layout has no line for (`unread`), would be what `_searched`
    reads: such a block does not match (nor does one with a lone CR, which is rare)."""
    keys = "|".join(("Timestamp", *unread))
    return rf"(?:\r\n(?!(?:{keys}):)[^\r]*+)*\Z"


def _channel_record(name: str, stamp: datetime | None, g: tuple[str, ...]) -> Record:
    return ChannelRecord(name, stamp, _matched_leg(g[1:9]))


def _hangup(name: str, stamp: datetime | None, g: tuple[str, ...]) -> Record:
    return Hangup(name, stamp, _matched_leg(g[1:9]), _int(g[9]))


def _bridge(name: str, stamp: datetime | None, g: tuple[str, ...]) -> Record:
    return Bridge(name, stamp, _matched_leg(g[2:10]), g[1])


def _varset(name: str, stamp: datetime | None, g: tuple[str, ...]) -> Record:
    return VarSet(name, stamp, _matched_leg(g[1:9]), g[9].lstrip("_"), g[10])


def _newexten(name: str, stamp: datetime | None, g: tuple[str, ...]) -> Record:
    return Newexten(name, stamp, _matched_leg(g[1:9]), g[9])


def _dial(name: str, stamp: datetime | None, g: tuple[str, ...]) -> Record:
    # DialBegin has a DialString and no DialStatus, DialEnd the other way round.
    status, dial_string = (g[17], "") if name == "DialEnd" else ("", g[17])
    source, dest = _matched_leg(g[1:9]), _matched_leg(g[9:17])
    return Dial(name, stamp, source, dest, status, dial_string)


def _cdr(name: str, stamp: datetime | None, g: tuple[str, ...]) -> Record | None:
    destination, started, answered_at, ended, duration, billsec, disposition, uniqueid = g[1:]
    seconds, billed = _float(duration), _float(billsec)
    if seconds is None or billed is None:
        return None
    return Cdr(
        name=name,
        stamp=stamp,
        uniqueid=uniqueid,
        duration=seconds,
        billsec=billed,
        answered=disposition == "ANSWERED",
        destination=destination,
        started=_cdr_time(started),
        answered_at=_cdr_time(answered_at),
        ended=_cdr_time(ended),
    )


_CHANNEL_EVENT = (re.compile(_EVENT_HEAD + _LEG + _rest()).match, _channel_record)
_DIAL = _EVENT_HEAD + _LEG + r"\r\n" + _DEST_LEG
_LAYOUTS: dict[str, tuple[Callable[[str], re.Match[str] | None], _Builder]] = {
    "Newchannel": _CHANNEL_EVENT,
    "NewCallerid": _CHANNEL_EVENT,
    "HangupRequest": _CHANNEL_EVENT,
    "Hangup": (re.compile(_EVENT_HEAD + _LEG + r"\r\nCause: ([^\r]*+)" + _rest()).match, _hangup),
    "BridgeEnter": (
        re.compile(
            _EVENT_HEAD + r"BridgeUniqueid: ([^\r]*+)\r\n(?:Bridge[^\r]*+\r\n)*" + _LEG + _rest()
        ).match,
        _bridge,
    ),
    "VarSet": (
        re.compile(
            _EVENT_HEAD + _LEG + r"\r\nVariable: ([^\r]*+)\r\nValue: ([^\r]*+)" + _rest()
        ).match,
        _varset,
    ),
    "Newexten": (
        re.compile(
            _EVENT_HEAD + _LEG + r"\r\nExtension: [^\r]*+\r\nApplication: ([^\r]*+)" + _rest()
        ).match,
        _newexten,
    ),
    # Without the caller's snapshot (an Originate dialling its first party): `_searched`.
    "DialBegin": (
        re.compile(_DIAL + r"\r\nDialString: ([^\r]*+)" + _rest("DialStatus")).match,
        _dial,
    ),
    "DialEnd": (
        re.compile(_DIAL + r"\r\nDialStatus: ([^\r]*+)" + _rest("DialString")).match,
        _dial,
    ),
    "Cdr": (
        re.compile(
            _EVENT_HEAD + r"AccountCode: [^\r]*+\r\nSource: [^\r]*+\r\nDestination: [^\r]*+\r\n"
            r"DestinationContext: [^\r]*+\r\nCallerID: [^\r]*+\r\nChannel: [^\r]*+\r\n"
            r"DestinationChannel: ([^\r]*+)\r\nLastApplication: [^\r]*+\r\nLastData: [^\r]*+\r\n"
            r"StartTime: ([^\r]*+)\r\nAnswerTime: ([^\r]*+)\r\nEndTime: ([^\r]*+)\r\n"
            r"Duration: ([^\r]*+)\r\nBillableSeconds: ([^\r]*+)\r\nDisposition: ([^\r]*+)\r\n"
            r"AMAFlags: [^\r]*+\r\nUniqueID: ([^\r]++)" + _rest()
        ).match,
        _cdr,
    ),
}
_LAYOUTS["BridgeLeave"] = _LAYOUTS["BridgeEnter"]


def decode(event: Event) -> Record | None:
    name = event.name
    layout = _LAYOUTS.get(name)
    if layout is not None:
        match = layout[0](event.raw)
        if match is not None:
            groups = match.groups()
            # Asterisk sends no Timestamp but with `timestampevents = yes`.
            stamp = None if groups[0] is None else _stamp_of(groups[0])
            return layout[1](name, stamp, groups)
    return _searched(event, name)


def _searched(event: Event, name: str) -> Record | None:
    """Any event, any layout: the snapshot read by one match where it is laid out as
    Asterisk writes it (`leg`), the few other headers by search (a split of every
    header costs more than both)."""
    get = event.get
    stamp = _stamp(event)
    if name in ("DialBegin", "DialEnd"):
        source, dest = _dial_legs(event)
        if dest is None:
            return None
        return Dial(
            name=name,
            stamp=stamp,
            leg=source,
            dest=dest,
            status=get("DialStatus", ""),
            dial_string=get("DialString", ""),
        )
    if name == "OriginateResponse":
        return OriginateResult(
            name=name,
            stamp=stamp,
            action_id=get("ActionID", ""),
            ok=get("Response") == "Success",
            reason=_int(get("Reason", ""), -1),
            uniqueid=number(get("Uniqueid", "")),
        )
    if name == "Cdr":
        duration, billsec = _float(get("Duration", "")), _float(get("BillableSeconds", ""))
        if duration is None or billsec is None:
            return None
        return Cdr(
            name=name,
            stamp=stamp,
            uniqueid=get("UniqueID") or get("Uniqueid", ""),
            duration=duration,
            billsec=billsec,
            answered=get("Disposition") == "ANSWERED",
            destination=get("DestinationChannel", ""),
            started=_cdr_time(get("StartTime", "")),
            answered_at=_cdr_time(get("AnswerTime", "")),
            ended=_cdr_time(get("EndTime", "")),
        )
    if name == "BlindTransfer":
        return Transfer(
            name=name,
            stamp=stamp,
            ok=get("Result", "Success") == "Success",
            linkedid=get("TransfereeLinkedid", ""),
            from_channel=get("TransfererChannel", ""),
            to_extension=get("Extension", ""),
            to_channel="",
        )
    if name == "AttendedTransfer":
        return Transfer(
            name=name,
            stamp=stamp,
            ok=get("Result", "Success") == "Success",
            linkedid=get("OrigTransfererLinkedid") or get("TransfereeLinkedid", ""),
            from_channel=get("OrigTransfererChannel", ""),
            to_extension="",
            to_channel=get("TransferTargetChannel", ""),
        )
    channel = _laid_out(event, "")  # has a Linkedid
    if channel is None:
        channel = leg(event)
        if channel is None or not get("Linkedid"):
            return None
    if name == "Newexten":
        return Newexten(name=name, stamp=stamp, leg=channel, application=get("Application", ""))
    if name == "VarSet":
        return VarSet(
            name=name,
            stamp=stamp,
            leg=channel,
            variable=get("Variable", "").lstrip("_"),
            value=get("Value", ""),
        )
    if name in ("BridgeEnter", "BridgeLeave"):
        return Bridge(name=name, stamp=stamp, leg=channel, bridge=get("BridgeUniqueid", ""))
    if name in ("QueueCallerJoin", "QueueCallerAbandon", "AgentConnect"):
        hold = get("HoldTime")
        return QueueRecord(
            name=name,
            stamp=stamp,
            leg=channel,
            queue=get("Queue", ""),
            hold_s=_float(hold) if hold else None,
        )
    if name == "Hangup":
        return Hangup(name=name, stamp=stamp, leg=channel, cause=_int(get("Cause", "")))
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
