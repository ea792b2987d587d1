"""AMI events -> normalized call events. Pure: no I/O, no clock of its own.

One state machine per Linkedid (Asterisk's id of the whole call across legs, transfers
and queue attempts). `feed(event, now)` returns the call events that AMI event completes,
in order; `tick(now)` releases calls whose end waits for a late `Cdr`.

Where the pieces come from (see shared/asterisk-ami/README.md):
- Direction: a call whose first channel is a trunk leg (context in `trunk_contexts`) is
  inbound. A call first seen on an extension is outbound once it reaches a trunk (or was
  originated by the CRM: `CRM_CALL_ID`), internal when it dials another extension.
- CallStarted for an inbound call waits until the dialplan has normalized the caller
  (`NewCallerid` comes a few `Newexten` later than `Newchannel`): it is released by the
  first event that is not channel setup (MixMonitor, AGI, Dial, Queue...).
- Ringing: `DialBegin` towards an extension (one per member for a queue ring-all).
  Answered: `DialEnd ANSWER` or `BridgeEnter` of an extension leg; queue losers end with
  cause 26 and are never answered_by.
- Transfers: `BlindTransfer` / `AttendedTransfer` events, and a Redirect seen as the
  client leg leaving its bridge at another dialplan location.
- Recording: `VarSet MIXMONITOR_FILENAME` (MixMonitorStart carries no file name).
- Times: an event's time is its `Timestamp:` header when Asterisk sends one
  (timestampevents=yes), else the receive time given to `feed`. The start is the
  Uniqueid's epoch. ring_s/talk_s at the end use the PBX's own clock when it gave one:
  Timestamp headers, else the `Cdr` events of the client-facing leg (Asterisk's
  Duration/BillableSeconds; for an outbound call billsec runs from the agent's answer),
  else receive times. The Cdr of an originated call's leg arrives after its Hangup, so
  an ended call may wait up to `cdr_grace_s` for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from telephony import events as ev
from telephony.ami.frames import Event

# Events that only set a channel up: an inbound CallStarted waits past them.
_SETUP_EVENTS = frozenset(
    {"Newchannel", "NewCallerid", "Newexten", "VarSet", "Newstate", "NewConnectedLine"}
)
_SETUP_APPS = frozenset({"NoOp", "Set", "ExecIf", "GotoIf", "Goto", "Verbose", "Log", "Gosub"})
_FAILED_CAUSES = frozenset({1, 3, 21, 27, 34, 38, 41, 42, 58, 88, 127})
_CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated number",
    16: "Normal clearing",
    17: "User busy",
    18: "No user responding",
    19: "No answer",
    21: "Call rejected",
    26: "Answered elsewhere",
    27: "Destination out of order",
    34: "No circuit available",
    38: "Network out of order",
    127: "Interworking",
}
# OriginateResponse Reason (Asterisk's AST_CONTROL_* of the first leg).
ORIGINATE_REASONS = {
    0: "extension_offline",  # the channel could not be created (not registered)
    1: "agent_no_answer",  # hung up / rejected before answering
    3: "agent_no_answer",  # ring timeout
    5: "agent_busy",
    8: "failed",  # congestion
}


def originate_reason(code: str) -> str:
    try:
        return ORIGINATE_REASONS.get(int(code), "failed")
    except ValueError:
        return "failed"


def epoch_of(uniqueid: str) -> datetime | None:
    """Asterisk Uniqueid is `<epoch seconds>.<sequence>`: the channel's creation time."""
    head, _, _ = uniqueid.partition(".")
    if not head.isdigit():
        return None
    return datetime.fromtimestamp(int(head), UTC)


def event_time(event: Event, now: datetime) -> datetime:
    stamp = event.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except ValueError:
            pass
    return now


def _cause(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


class _Base(TypedDict):
    call_id: str
    at: datetime
    crm_call_id: str | None


@dataclass(slots=True)
class _Channel:
    name: str
    uniqueid: str
    kind: str  # trunk | ext | local | other
    ext: str | None
    context: str = ""
    exten: str = ""
    bridge: str | None = None
    cause: int | None = None


@dataclass(slots=True)
class _Cdr:
    uniqueid: str
    duration: float
    billsec: float
    answered: bool
    start: str


@dataclass(slots=True)
class _Call:
    call_id: str
    start_at: datetime  # CallStarted.at: Timestamp, else the Uniqueid's epoch
    first_seen: datetime  # the first event's own time: durations are measured from it
    first: _Channel
    direction: ev.Direction | None = None
    started: bool = False
    crm_call_id: str | None = None
    caller: str | None = None
    caller_name: str | None = None
    callee: str | None = None
    did: str | None = None
    channels: dict[str, _Channel] = field(default_factory=dict)  # live, by Uniqueid
    gone: dict[str, _Channel] = field(default_factory=dict)
    client_uid: str | None = None  # the client-facing (trunk) leg
    ringing: set[str] = field(default_factory=set)
    agents: list[str] = field(default_factory=list)
    answered_by: str | None = None
    answered: bool = False
    first_answer_at: datetime | None = None
    last_dial: str = ""
    abandoned: bool = False
    current_agent: str | None = None
    last_transfer: str | None = None
    recordings: set[str] = field(default_factory=set)
    cdrs: list[_Cdr] = field(default_factory=list)
    stamped: bool = False  # saw Timestamp headers: event times are the PBX's
    last_at: datetime | None = None
    ending_since: datetime | None = None
    end_at: datetime | None = None
    pending: list[ev.CallEvent] = field(default_factory=list)  # held until CallStarted


@dataclass(frozen=True, slots=True)
class PendingOriginate:
    crm_call_id: str
    agent: str
    number: str


class CallTranslator:
    def __init__(
        self,
        *,
        trunk_contexts: Iterable[str] = ("from-trunk", "from-pstn", "from-external"),
        extension_pattern: str = r"\d{2,6}",
        expect_cdr: bool = True,
        cdr_grace_s: float = 2.0,
    ) -> None:
        self._trunk_contexts = frozenset(trunk_contexts)
        self._ext_re = re.compile(extension_pattern)
        self._expect_cdr = expect_cdr
        self._cdr_grace = timedelta(seconds=cdr_grace_s)
        self._calls: dict[str, _Call] = {}
        self._by_uid: dict[str, str] = {}  # channel Uniqueid -> Linkedid
        self._originates: dict[str, PendingOriginate] = {}  # ActionID -> request
        self._by_crm: dict[str, PendingOriginate] = {}
        self._ended: dict[str, None] = {}  # recently ended Linkedids (ordered, bounded)
        self._unstarted: set[str] = set()  # calls whose CallStarted is still held back
        self._cdr_seen = False
        self._cdr_misses = 0

    # ----------------------------------------------------------------- public
    @property
    def live_calls(self) -> list[str]:
        return list(self._calls)

    @property
    def live_count(self) -> int:
        return len(self._calls)

    def client_channel(self, call_id: str) -> str | None:
        """The channel to Redirect/Hangup for a call: its client-facing leg, else its first."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        if call.client_uid and call.client_uid in call.channels:
            return call.channels[call.client_uid].name
        for channel in call.channels.values():
            return channel.name
        return None

    def expect_originate(self, action_id: str, request: PendingOriginate) -> None:
        self._originates[action_id] = request
        self._by_crm[request.crm_call_id] = request

    def forget_originate(self, action_id: str) -> None:
        request = self._originates.pop(action_id, None)
        if request is not None:
            self._by_crm.pop(request.crm_call_id, None)

    def feed(self, event: Event, now: datetime) -> list[ev.CallEvent]:
        # Most of Asterisk's events say nothing about calls: drop them by name alone,
        # before their headers are split (that split is most of the cost per event).
        name = event.name
        if name not in _WANTED:
            if not self._unstarted:
                return []  # only a call still waiting for its start cares about the rest
        elif name == "VarSet":
            raw = event.raw
            if "MIXMONITOR_FILENAME" not in raw and "CRM_CALL_ID" not in raw:
                return []
        elif name == "Newexten" and not self._unstarted:
            return []
        out: list[ev.CallEvent] = []
        if name == "OriginateResponse":
            self._originate_response(event, event_time(event, now), out)
            return out
        if name == "Cdr":
            self._cdr(event, now, out)
            return out
        linkedid = event.get("Linkedid")
        if not linkedid:
            if name in ("DialBegin", "DialEnd"):  # originate's own dial: only Dest* headers
                linkedid = event.get("DestLinkedid")
            if name in ("BlindTransfer", "AttendedTransfer"):
                self._transfer_event(event, now, out)
            if not linkedid:
                return out
        call = self._calls.get(linkedid)
        if call is None and (name != "Newchannel" or linkedid in self._ended):
            return out  # a leg of a call we do not track (ended, or before we joined)
        at = event_time(event, now)
        if call is None:
            call = self._new_call(event, linkedid, at)
        if at is not now:
            call.stamped = True
        call.last_at = at
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, call, event, at, out)
        if not call.started and (
            name not in _SETUP_EVENTS
            or (name == "Newexten" and event.get("Application") not in _SETUP_APPS)
        ):
            self._maybe_start(call, at, out, force=call.first.kind == "trunk")
        if not call.channels and call.ending_since is None and call.call_id in self._calls:
            call.ending_since = at
            call.end_at = at
            if not self._waiting_cdr(call):
                self._end(call, out)
        return out

    def tick(self, now: datetime) -> list[ev.CallEvent]:
        """Release ended calls whose Cdr did not come within the grace period."""
        out: list[ev.CallEvent] = []
        for call in list(self._calls.values()):
            if call.ending_since is not None and now - call.ending_since >= self._cdr_grace:
                self._end(call, out)
                if not self._cdr_seen:
                    # A PBX without cdr_manager never sends one: stop making calls wait.
                    self._cdr_misses += 1
                    self._expect_cdr = self._cdr_misses < 3
        return out

    def resync(self, channels: list[Event], now: datetime) -> list[ev.CallEvent]:
        """Rebuild live calls from a CoreShowChannels reply after a (re)connect.

        Calls already known emit nothing new; calls unknown so far (the adapter started
        mid-call) get CallStarted/CallAnswered; known calls with no channel left ended
        while the link was down and end now, once.
        """
        out: list[ev.CallEvent] = []
        by_linked: dict[str, list[Event]] = {}
        for row in channels:
            by_linked.setdefault(row.get("Linkedid") or row.get("Uniqueid"), []).append(row)
        for linkedid, legs in by_linked.items():
            legs.sort(key=lambda e: _uid_key(e.get("Uniqueid")))
            call = self._calls.get(linkedid)
            if call is None:
                if linkedid in self._ended:
                    continue
                call = self._new_call(legs[0], linkedid, now)
                self._maybe_start(call, now, out, force=True)
            live = {leg.get("Uniqueid") for leg in legs}
            for uid in list(call.channels):
                if uid not in live:  # hung up while we were away
                    call.gone[uid] = call.channels.pop(uid)
            for leg in legs:
                uid = leg.get("Uniqueid")
                channel = call.channels.get(uid)
                if channel is None:
                    channel = self._channel(leg)
                    call.channels[uid] = channel
                    self._by_uid[uid] = linkedid
                    if call.client_uid is None and channel.kind == "trunk":
                        call.client_uid = uid
                channel.bridge = leg.get("BridgeId") or None
                ringing = leg.get("ChannelStateDesc") == "Ringing"
                if ringing and channel.ext and channel.ext not in call.ringing:
                    call.ringing.add(channel.ext)
                    self._emit(
                        call,
                        ev.CallRinging(
                            **self._base(call, now),
                            agent=channel.ext,
                            caller=call.caller,
                            caller_name=call.caller_name,
                        ),
                        out,
                    )
            # Answers (and transfers) that happened while we were away; repeats are ignored.
            for channel in [c for c in call.channels.values() if c.bridge]:
                self._answered_by(call, channel, now, out)
        for call in list(self._calls.values()):
            if call.call_id not in by_linked:
                call.gone.update(call.channels)
                call.channels.clear()
                call.ending_since = call.end_at = now
                self._end(call, out)
        return out

    # ------------------------------------------------------------- internals
    def _channel(self, event: Event) -> _Channel:
        name = event.get("Channel")
        tech, _, rest = name.partition("/")
        context = event.get("Context")
        resource = rest.rpartition("-")[0] if "-" in rest else rest
        ext: str | None = None
        if tech == "Local":
            kind = "local"
            target = rest.partition("@")[0]
            ext = target if self._ext_re.fullmatch(target) else None
        elif context in self._trunk_contexts:
            kind = "trunk"
        elif self._ext_re.fullmatch(resource):
            kind, ext = "ext", resource
        else:
            kind = "trunk" if tech in ("PJSIP", "SIP", "IAX2", "DAHDI") else "other"
        return _Channel(name, event.get("Uniqueid"), kind, ext, context, event.get("Exten"))

    def _new_call(self, event: Event, linkedid: str, at: datetime) -> _Call:
        first = self._channel(event)
        start = at if event.get("Timestamp") else (epoch_of(linkedid) or at)
        call = _Call(call_id=linkedid, start_at=start, first_seen=at, first=first)
        self._calls[linkedid] = call
        self._unstarted.add(linkedid)
        call.channels[first.uniqueid] = first
        self._by_uid[first.uniqueid] = linkedid
        if first.kind == "trunk":
            call.direction = ev.Direction.INBOUND
            call.client_uid = first.uniqueid
            call.caller = _number(event.get("CallerIDNum"))
            call.caller_name = _number(event.get("CallerIDName"))
            call.did = call.callee = event.get("Exten") or None
        else:
            call.caller = first.ext or _number(event.get("CallerIDNum"))
            call.current_agent = first.ext
        return call

    def _maybe_start(
        self, call: _Call, at: datetime, out: list[ev.CallEvent], *, force: bool = False
    ) -> None:
        if call.started:
            return
        if call.direction is None:
            if not force:
                return
            call.direction = ev.Direction.INTERNAL
        if call.direction is ev.Direction.OUTBOUND and call.callee is None and not force:
            return  # an Originate: wait until the dialplan shows the number dialled
        call.started = True
        self._unstarted.discard(call.call_id)
        first_ext = call.first.ext
        if call.direction is ev.Direction.OUTBOUND and first_ext and first_ext not in call.agents:
            call.agents.append(first_ext)
        out.append(
            ev.CallStarted(
                call_id=call.call_id,
                at=call.start_at,
                crm_call_id=call.crm_call_id,
                direction=call.direction,
                caller=call.caller,
                callee=call.callee,
                caller_name=call.caller_name,
                did=call.did,
            )
        )
        out.extend(call.pending)
        call.pending.clear()

    def _emit(self, call: _Call, event: ev.CallEvent, out: list[ev.CallEvent]) -> None:
        if call.started:
            out.append(event)
        else:
            call.pending.append(event)

    def _decide(self, call: _Call, direction: ev.Direction, callee: str | None) -> None:
        if call.direction is None:
            call.direction = direction
            call.callee = call.callee or callee

    def _answered_by(
        self, call: _Call, channel: _Channel, at: datetime, out: list[ev.CallEvent]
    ) -> None:
        agent = channel.ext
        if channel.kind == "trunk":
            # The external party of an outbound call answered.
            outbound = call.direction is ev.Direction.OUTBOUND
            if outbound and channel.uniqueid == call.client_uid and not call.answered:
                call.answered = True
                call.first_answer_at = at
                self._emit(call, ev.CallAnswered(**self._base(call, at), agent=None), out)
            return
        if agent is None or channel.uniqueid == call.first.uniqueid:
            return  # the caller's own leg, or a helper channel
        if agent in call.agents:
            return
        call.agents.append(agent)
        call.ringing.discard(agent)
        call.current_agent = agent
        if call.direction is not ev.Direction.OUTBOUND and not call.answered:
            call.answered = True
            call.first_answer_at = at
            call.answered_by = agent
        self._emit(call, ev.CallAnswered(**self._base(call, at), agent=agent), out)

    def _base(self, call: _Call, at: datetime) -> _Base:
        return {"call_id": call.call_id, "at": at, "crm_call_id": call.crm_call_id}

    # ---------------------------------------------------------------- events
    def _on_newchannel(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        uid = event.get("Uniqueid")
        if uid in call.channels:
            return
        channel = self._channel(event)
        call.channels[uid] = channel
        self._by_uid[uid] = call.call_id
        if channel.kind == "trunk" and call.client_uid is None:
            call.client_uid = uid
            if call.first.kind != "trunk":
                self._decide(call, ev.Direction.OUTBOUND, None)
                self._maybe_start(call, at, out)

    def _on_newcallerid(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        uid = event.get("Uniqueid")
        if uid == call.client_uid and call.direction is ev.Direction.INBOUND:
            call.caller = _number(event.get("CallerIDNum")) or call.caller
            call.caller_name = _number(event.get("CallerIDName")) or call.caller_name

    def _on_newexten(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        channel = call.channels.get(event.get("Uniqueid"))
        if channel is None:
            return
        channel.context, channel.exten = event.get("Context"), event.get("Exten")
        if channel is call.first and call.first.kind != "trunk" and channel.exten not in ("s", ""):
            target = channel.exten
            if call.direction is None:
                internal = self._ext_re.fullmatch(target) is not None
                self._decide(
                    call, ev.Direction.INTERNAL if internal else ev.Direction.OUTBOUND, target
                )
            call.callee = call.callee or target
            self._maybe_start(call, at, out)

    def _on_varset(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        variable = event.get("Variable").lstrip("_")
        value = event.get("Value")
        if variable == "MIXMONITOR_FILENAME" and value and value not in call.recordings:
            call.recordings.add(value)
            self._maybe_start(call, at, out, force=call.first.kind == "trunk")
            self._emit(call, ev.RecordingStarted(**self._base(call, at), file=value), out)
        elif variable == "CRM_CALL_ID" and value and call.crm_call_id is None:
            call.crm_call_id = value
            request = self._by_crm.get(value)
            if call.first.kind != "trunk":
                self._decide(call, ev.Direction.OUTBOUND, request.number if request else None)
                if request is not None:
                    self._maybe_start(call, at, out)

    def _on_dialbegin(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        dest_uid = event.get("DestUniqueid")
        dest = call.channels.get(dest_uid)
        if dest is None:
            return
        source_uid = event.get("Uniqueid")
        if dest.kind == "trunk":
            if call.first.kind != "trunk":
                self._decide(call, ev.Direction.OUTBOUND, event.get("DialString") or None)
                self._maybe_start(call, at, out)
            return
        agent = dest.ext
        if agent is None:
            return
        if call.first.kind != "trunk" and source_uid == call.first.uniqueid:
            self._decide(call, ev.Direction.INTERNAL, agent)
        if not source_uid and dest is call.first and call.crm_call_id is not None:
            # An Originate ringing the agent's own phone first.
            self._decide(call, ev.Direction.OUTBOUND, None)
        self._maybe_start(call, at, out, force=call.first.kind == "trunk")
        if agent in call.ringing or (agent in call.agents and dest is not call.first):
            return
        call.ringing.add(agent)
        if call.direction is not ev.Direction.OUTBOUND and dest is not call.first:
            self._redirect_check(call, agent, at, out)
        caller = call.caller
        self._emit(
            call,
            ev.CallRinging(
                **self._base(call, at), agent=agent, caller=caller, caller_name=call.caller_name
            ),
            out,
        )

    def _redirect_check(self, call: _Call, agent: str, at: datetime, out: list) -> None:
        """A client leg that talked to one agent and now rings another was moved."""
        if call.agents and agent not in call.agents and call.last_transfer != agent:
            client = call.channels.get(call.client_uid or "")
            kind = "redirect" if client is not None and client.bridge is None else "blind"
            call.last_transfer = agent
            self._emit(
                call,
                ev.CallTransferred(
                    **self._base(call, at), from_agent=call.current_agent, to_agent=agent, kind=kind
                ),
                out,
            )

    def _on_dialend(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        dest = call.channels.get(event.get("DestUniqueid"))
        status = event.get("DialStatus")
        if dest is None:
            return
        if dest.ext:
            call.ringing.discard(dest.ext)
        if dest is call.first:
            return  # the Originate's ring of the agent: not the client's answer
        client_side = dest.kind == "trunk" or event.get("Uniqueid") in (
            call.client_uid,
            call.first.uniqueid,
        )
        # A CANCEL to the queue's losers after one answered must not hide the ANSWER.
        if client_side and (status != "CANCEL" or not call.last_dial):
            call.last_dial = status
        if status == "ANSWER":
            self._answered_by(call, dest, at, out)

    def _on_bridgeenter(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        channel = call.channels.get(event.get("Uniqueid"))
        if channel is None:
            return
        channel.bridge = event.get("BridgeUniqueid")
        channel.context, channel.exten = event.get("Context"), event.get("Exten")
        if channel.kind == "ext" or (
            channel.kind == "trunk" and call.direction is ev.Direction.OUTBOUND
        ):
            self._answered_by(call, channel, at, out)

    def _on_bridgeleave(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        channel = call.channels.get(event.get("Uniqueid"))
        if channel is None:
            return
        channel.bridge = None
        context, exten = event.get("Context"), event.get("Exten")
        moved = (context, exten) != (channel.context, channel.exten)
        channel.context, channel.exten = context, exten
        if (
            moved
            and channel.uniqueid == call.client_uid
            and call.direction is ev.Direction.INBOUND
            and exten
            and self._ext_re.fullmatch(exten)
            and exten != call.current_agent
            and call.last_transfer != exten
        ):
            # The client leg was sent elsewhere in the dialplan while talking: a Redirect.
            call.last_transfer = exten
            self._emit(
                call,
                ev.CallTransferred(
                    **self._base(call, at),
                    from_agent=call.current_agent,
                    to_agent=exten,
                    kind="redirect",
                ),
                out,
            )

    def _on_hangup(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        uid = event.get("Uniqueid")
        channel = call.channels.pop(uid, None)
        if channel is None:
            return
        channel.cause = _cause(event.get("Cause"))
        call.gone[uid] = channel
        if channel.ext:
            call.ringing.discard(channel.ext)
        client_leg = uid == call.client_uid or channel is call.first
        if client_leg and not call.answered:
            # The client-facing leg went first while agents still rang: the caller gave up.
            call.abandoned = any(c.kind == "ext" for c in call.channels.values())

    def _on_queue_abandon(self, call: _Call, event: Event, at: datetime, out: list) -> None:
        call.abandoned = True

    def _transfer_event(self, event: Event, now: datetime, out: list) -> None:
        name = event.get("Event")
        at = event_time(event, now)
        if name == "BlindTransfer":
            if event.get("Result", "Success") != "Success":
                return
            linked = event.get("TransfereeLinkedid")
            target = event.get("Extension")
            from_channel = event.get("TransfererChannel")
            kind = "blind"
        else:
            if event.get("Result", "Success") != "Success":
                return
            linked = event.get("OrigTransfererLinkedid") or event.get("TransfereeLinkedid")
            target_channel = event.get("TransferTargetChannel")
            target = _ext_of(target_channel, self._ext_re) or ""
            from_channel = event.get("OrigTransfererChannel")
            kind = "attended"
        call = self._calls.get(linked)
        if call is None or not target:
            return
        from_agent = _ext_of(from_channel, self._ext_re) or call.current_agent
        if call.last_transfer == target:
            return
        call.last_transfer = target
        self._emit(
            call,
            ev.CallTransferred(
                **self._base(call, at), from_agent=from_agent, to_agent=target, kind=kind
            ),
            out,
        )
        if kind == "attended" and target not in call.agents:
            # The target's leg belongs to the consultation call's Linkedid: it talks now.
            call.agents.append(target)
            call.current_agent = target
            self._emit(call, ev.CallAnswered(**self._base(call, at), agent=target), out)

    def _originate_response(self, event: Event, at: datetime, out: list) -> None:
        action_id = event.get("ActionID")
        request = self._originates.pop(action_id, None)
        if request is not None:
            self._by_crm.pop(request.crm_call_id, None)
        if event.get("Response") == "Success":
            return
        crm_call_id = request.crm_call_id if request else None
        uid = event.get("Uniqueid")
        call_id = self._by_uid.get(uid) or (uid if uid and uid != "<null>" else None)
        out.append(
            ev.OriginateFailed(
                call_id=call_id or crm_call_id or action_id,
                at=at,
                crm_call_id=crm_call_id,
                reason=originate_reason(event.get("Reason")),
            )
        )

    def _cdr(self, event: Event, now: datetime, out: list) -> None:
        self._cdr_seen = True
        uid = event.get("UniqueID") or event.get("Uniqueid")
        linkedid = self._by_uid.get(uid)
        call = self._calls.get(linkedid) if linkedid else None
        if call is None:
            return
        try:
            duration = float(event.get("Duration") or 0)
            billsec = float(event.get("BillableSeconds") or 0)
        except ValueError:
            return
        call.cdrs.append(
            _Cdr(
                uid,
                duration,
                billsec,
                event.get("Disposition") == "ANSWERED",
                event.get("StartTime"),
            )
        )
        if call.ending_since is not None and not self._waiting_cdr(call):
            self._end(call, out)

    def _waiting_cdr(self, call: _Call) -> bool:
        return self._expect_cdr and not call.stamped and not call.cdrs

    # ------------------------------------------------------------------- end
    def _end(self, call: _Call, out: list[ev.CallEvent]) -> None:
        if self._calls.pop(call.call_id, None) is None:
            return
        self._unstarted.discard(call.call_id)
        if call.crm_call_id and call.crm_call_id in self._by_crm:
            # Its OriginateResponse never came (link lost): forget the request with the call.
            request = self._by_crm.pop(call.crm_call_id)
            for action_id in [a for a, r in self._originates.items() if r is request]:
                del self._originates[action_id]
        self._ended[call.call_id] = None
        if len(self._ended) > 10_000:
            self._ended.pop(next(iter(self._ended)))
        for uid in [*call.channels, *call.gone]:
            self._by_uid.pop(uid, None)
        end_at = call.end_at or call.last_at or call.start_at
        self._maybe_start(call, end_at, out, force=True)
        client = call.gone.get(call.client_uid or "") or call.gone.get(call.first.uniqueid)
        cause = client.cause if client is not None and client.cause is not None else 0
        disposition = self._disposition(call, cause)
        ring_s, talk_s = self._durations(call, end_at)
        out.append(
            ev.CallEnded(
                **self._base(call, end_at),
                direction=call.direction or ev.Direction.INTERNAL,
                disposition=disposition,
                cause=cause,
                cause_text=_CAUSE_TEXT.get(cause, ""),
                caller=call.caller,
                callee=call.callee,
                ring_s=ring_s,
                talk_s=talk_s,
                agents=tuple(call.agents),
                answered_by=call.answered_by,
            )
        )

    def _disposition(self, call: _Call, cause: int) -> ev.Disposition:
        if call.answered:
            return ev.Disposition.ANSWERED
        dial = call.last_dial
        if dial == "BUSY" or cause == 17:
            return ev.Disposition.BUSY
        if dial == "NOANSWER" or cause in (18, 19):
            return ev.Disposition.MISSED
        if dial in ("CONGESTION", "CHANUNAVAIL") or cause in _FAILED_CAUSES:
            return ev.Disposition.FAILED
        if call.abandoned or dial == "CANCEL":
            return ev.Disposition.ABANDONED
        if call.ringing or call.last_dial:
            return ev.Disposition.MISSED
        return ev.Disposition.ABANDONED if cause == 16 else ev.Disposition.FAILED

    def _durations(self, call: _Call, end_at: datetime) -> tuple[float, float]:
        if not call.stamped and call.cdrs:
            return _cdr_durations(call)
        # One clock for both ends: the event times (Timestamp, or our receive times).
        total = max((end_at - call.first_seen).total_seconds(), 0.0)
        if call.first_answer_at is None:
            return total, 0.0
        ring = max((call.first_answer_at - call.first_seen).total_seconds(), 0.0)
        return ring, max(total - ring, 0.0)


def _cdr_durations(call: _Call) -> tuple[float, float]:
    """ring/talk from Asterisk's CDRs of the leg the call is billed on."""
    owner = call.client_uid if call.first.kind == "trunk" else call.first.uniqueid
    cdrs = [c for c in call.cdrs if c.uniqueid == owner] or call.cdrs
    answered = [c for c in cdrs if c.answered and c.billsec > 0] or [c for c in cdrs if c.answered]
    if not answered:
        return max(c.duration for c in cdrs), 0.0
    first = answered[0]
    # Later CDRs of the same leg (after a Redirect) continue the same conversation.
    return first.duration - first.billsec, sum(c.billsec for c in answered)


def _uid_key(uid: str) -> tuple[int, int]:
    head, _, tail = uid.partition(".")
    return (int(head) if head.isdigit() else 0, int(tail) if tail.isdigit() else 0)


def _number(value: str) -> str | None:
    return None if value in ("", "<unknown>", "<null>") else value


def _ext_of(channel: str, pattern: re.Pattern[str]) -> str | None:
    _, _, rest = channel.partition("/")
    resource = rest.partition("@")[0] if channel.startswith("Local/") else rest.rpartition("-")[0]
    return resource if pattern.fullmatch(resource) else None


_HANDLERS: dict[
    str, Callable[[CallTranslator, _Call, Event, datetime, list[ev.CallEvent]], None]
] = {
    "Newchannel": CallTranslator._on_newchannel,
    "NewCallerid": CallTranslator._on_newcallerid,
    "Newexten": CallTranslator._on_newexten,
    "VarSet": CallTranslator._on_varset,
    "DialBegin": CallTranslator._on_dialbegin,
    "DialEnd": CallTranslator._on_dialend,
    "BridgeEnter": CallTranslator._on_bridgeenter,
    "BridgeLeave": CallTranslator._on_bridgeleave,
    "Hangup": CallTranslator._on_hangup,
    "QueueCallerAbandon": CallTranslator._on_queue_abandon,
}
_WANTED = frozenset(_HANDLERS) | {"OriginateResponse", "Cdr", "BlindTransfer", "AttendedTransfer"}
