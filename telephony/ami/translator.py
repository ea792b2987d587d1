"""AMI events -> normalized call events. Pure: no I/O, no clock of its own.

AMI events are decoded into the typed records of `records.py` on the way in; the state
machine below reads fields, never header strings. One state machine per Linkedid
(Asterisk's id of the whole call across legs, transfers and queue attempts).
`feed(event, now)` returns the call events that AMI event completes, in order;
`tick(now)` releases calls whose end waits for a late `Cdr`.

Where the pieces come from (see captures/README.md and captures/README-set2.md):
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
- Originate: `CRM_CALL_ID` marks the call. If the agent's own phone never answers, the
  call ends as one OriginateFailed (from the OriginateResponse Reason, or the agent
  leg's Hangup cause, whichever comes first) and no CallEnded.
- Unanswered: BUSY; a queue's own timeout (`QUEUESTATUS=TIMEOUT`; Asterisk 22 also sends
  `QueueCallerAbandon` then) is MISSED; a caller who hung up while a phone rang (cause
  127 with `DialStatus: CANCEL`), in a queue or before anything rang is ABANDONED; FAILED
  only when the call could not be made (congestion, unavailable, no route).
- Times: one clock per call, the PBX's. An event's time is its `Timestamp:` header when
  Asterisk sends one (timestampevents=yes), else the call's start (the Uniqueid's epoch)
  plus the receive time elapsed since its first event. The wait (ring_s) and talk at the
  end come from Timestamp headers, else the `Cdr` events of the client-facing leg over
  every attempt (Start/Answer/End times, BillableSeconds per dialled agent), else those
  event times; a queue's `HoldTime` is a floor. A call that dialled nobody gets no Cdr
  (cdr.conf `unanswered = no`); the Cdr of an originated call's leg arrives after its
  Hangup, so an ended call that dialled may wait up to `cdr_grace_s` for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from telephony import events as ev
from telephony.ami import records as rec
from telephony.ami.frames import Event, Interest, header

# Events that only set a channel up: an inbound CallStarted waits past them.
_SETUP_EVENTS = frozenset(
    {"Newchannel", "NewCallerid", "Newexten", "VarSet", "Newstate", "NewConnectedLine"}
)
_SETUP_APPS = frozenset({"NoOp", "Set", "ExecIf", "GotoIf", "Goto", "Verbose", "Log", "Gosub"})
# Setup events that change nothing of a held call (`apply` never releases a start on
# them), but for a Newexten running another application or of a call placed from an
# extension, whose dialplan tells what it dialled (`_on_newexten`).
_INERT_SETUP = frozenset({"Newexten", "Newstate", "NewConnectedLine"})
# What the state machine reads, the one statement of it: `feed` drops the rest by name,
# and so does the adapter's parser before it builds an Event (`CallTranslator.interest`).
# Every other event (Newexten included) matters only while a call's start is held.
NEEDED_EVENTS = frozenset(
    {
        "Newchannel",
        "NewCallerid",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "Hangup",
        "QueueCallerJoin",
        "QueueCallerAbandon",
        "AgentConnect",
        "HangupRequest",
        "BlindTransfer",
        "AttendedTransfer",
        "OriginateResponse",
        "Cdr",
    }
)
# Dialplan variables the state machine reads: VarSet, half of a call's events, is dropped
# unread for any other (while a start is held too: VarSet never releases one).
READ_VARIABLES = frozenset({"MIXMONITOR_FILENAME", "CRM_CALL_ID", "QUEUESTATUS"})
# Causes that say the call could not be made (127 is also a caller's CANCEL: read last).
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


# Hangup cause of an originated agent leg that never answered -> OriginateFailed.reason
_AGENT_FAILURE = {
    17: "agent_busy",
    16: "agent_no_answer",  # rang out, or cancelled
    18: "agent_no_answer",
    19: "agent_no_answer",
    21: "agent_no_answer",  # declined
    0: "agent_no_answer",
    1: "extension_offline",
    3: "extension_offline",
    20: "extension_offline",  # subscriber absent: not registered
    27: "extension_offline",
}


def originate_reason(code: int) -> str:
    return ORIGINATE_REASONS.get(code, "failed")


def epoch_of(uniqueid: str) -> datetime | None:
    """Asterisk Uniqueid is `<epoch seconds>.<sequence>`: the channel's creation time."""
    head, _, _ = uniqueid.partition(".")
    if not head.isdigit():
        return None
    return datetime.fromtimestamp(int(head), UTC)


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
    dialled: bool = False  # some DialBegin: Asterisk posts a Cdr at the end
    dials: int = 0  # parties the caller's own leg dialled: one Cdr each
    queue: str | None = None
    hold_s: float = 0.0  # the queue's HoldTime, over every queue the caller waited in
    queue_timeout: bool = False
    talking: dict[str, datetime] = field(default_factory=dict)  # agent -> talking since
    talked: dict[str, float] = field(default_factory=dict)  # agent -> seconds (event times)
    agent_up: bool = False  # an Originate's first party (the agent's phone) answered
    dialling: bool = False  # an Originate dials the client (said once)
    current_agent: str | None = None
    last_transfer: str | None = None
    recordings: set[str] = field(default_factory=set)
    cdrs: list[rec.Cdr] = field(default_factory=list)
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


Out = list[ev.CallEvent]


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
        self._failed: dict[str, None] = {}  # CRM ids already given an OriginateFailed
        # Calls whose CallStarted is still held back. Mutated, never rebound: `interest`
        # wants every event while it is not empty.
        self._unstarted: set[str] = set()
        # Those of them placed from an extension (not a trunk): their dialplan tells what
        # was dialled, so their Newexten events are read.
        self._unstarted_placed: set[str] = set()
        self.interest = Interest(
            NEEDED_EVENTS,
            READ_VARIABLES,
            all_while=self._unstarted,
            while_held=self._read_while_held,
        )
        self._cdr_seen = False
        self._cdr_misses = 0
        # What each class of a call's records does to it (`_dispatch`).
        self._handlers: dict[type[rec.Record], Callable[[_Call, Any, datetime, Out], None]] = {
            rec.Dial: self._on_dial,
            rec.Bridge: self._on_bridge,
            rec.Hangup: self._on_hangup,
            rec.QueueRecord: self._on_queue,
            rec.VarSet: self._on_varset,
            rec.Newexten: self._on_newexten,
            rec.ChannelRecord: self._on_channel,
        }

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

    def feed(self, event: Event, now: datetime) -> Out:
        """One AMI event, as received at `now`; the call events it completes, in order."""
        # Most of Asterisk's events say nothing about calls: drop them by name alone,
        # before their headers are read (that is most of the cost per event). The adapter's
        # parser drops them before an Event is even built, by the same rule.
        if not self.interest.admits(event.name, event.raw):
            return []
        return self.read(event, now)

    def read(self, event: Event, now: datetime) -> Out:
        """`feed` for an event that `interest` admitted just now (a parser asked it)."""
        record = rec.decode(event)
        return [] if record is None else self.apply(record, now)

    def _read_while_held(self, name: str, raw: str) -> bool:
        """Whether an event read only while a start is held can change a call: one of a
        held call (without a Linkedid, ExtensionStatus, QueueMemberStatus... are nobody's;
        those of the calls already started are read as when none is held), and not a
        Newexten during an inbound call's setup, a fifth of the events decoded."""
        linkedid = header(raw, "Linkedid")
        if linkedid not in self._unstarted:
            return False
        if name not in _INERT_SETUP:
            return True
        if name != "Newexten":
            return False
        if header(raw, "Application") not in _SETUP_APPS:
            return True
        return linkedid in self._unstarted_placed

    def apply(self, record: rec.Record, now: datetime) -> Out:
        """The same as `feed`, for an event already decoded."""
        out: Out = []
        at = record.stamp or now
        # A channel's events first: they are most of them (each test costs, per event).
        if isinstance(record, rec.ChannelRecord):
            linkedid = record.leg.linkedid
        elif isinstance(record, rec.Dial):
            # An Originate's own dial of its first party has only Dest* headers.
            linkedid = (record.leg or record.dest).linkedid
        elif isinstance(record, rec.Cdr):
            self._cdr(record, out)
            return out
        elif isinstance(record, rec.OriginateResult):
            self._originate_result(record, at, out)
            return out
        else:
            assert isinstance(record, rec.Transfer)
            self._transfer(record, now, out)
            return out
        call = self._calls.get(linkedid)
        if call is None:
            if record.name != "Newchannel" or linkedid in self._ended:
                return out  # a leg of a call we do not track (ended, or before we joined)
            assert isinstance(record, rec.ChannelRecord)
            if record.leg.uniqueid != linkedid:
                # A later leg of a call that began before we joined (its first channel
                # names the call): the resync adopts it whole, not as a call of its own.
                return out
            call = self._new_call(record.leg, at, stamped=record.stamp is not None)
        if record.stamp is not None:
            call.stamped = True
        at = record.stamp or _on_call_clock(call, now)
        call.last_at = at
        self._dispatch(call, record, at, out)
        if not call.started and (
            record.name not in _SETUP_EVENTS
            or (isinstance(record, rec.Newexten) and record.application not in _SETUP_APPS)
        ):
            self._maybe_start(call, out, force=call.first.kind == "trunk")
        if not call.channels and call.ending_since is None and call.call_id in self._calls:
            call.ending_since, call.end_at = now, at
            if not self._waiting_cdr(call):
                self._end(call, out)
        return out

    def tick(self, now: datetime) -> Out:
        """Release ended calls whose Cdr did not come within the grace period."""
        out: Out = []
        for call in list(self._calls.values()):
            if call.ending_since is not None and now - call.ending_since >= self._cdr_grace:
                self._end(call, out)
                if not self._cdr_seen:
                    # A PBX without cdr_manager never sends one: stop making calls wait.
                    self._cdr_misses += 1
                    self._expect_cdr = self._cdr_misses < 3
        return out

    def resync(self, rows: list[Event], now: datetime) -> Out:
        """Rebuild live calls from a CoreShowChannels reply after a (re)connect.

        Calls already known emit nothing new; calls unknown so far (the adapter started
        mid-call) get CallStarted/CallAnswered; known calls with no channel left ended
        while the link was down and end now, once.
        """
        out: Out = []
        by_linked: dict[str, list[rec.ShownChannel]] = {}
        for row in rows:
            shown = rec.shown_channel(row)
            if shown is not None:
                by_linked.setdefault(shown.leg.linkedid, []).append(shown)
        for linkedid, legs in by_linked.items():
            legs.sort(key=lambda shown: _uid_key(shown.leg.uniqueid))
            call = self._calls.get(linkedid)
            adopted = call is None
            if call is None:
                first = next((shown for shown in legs if shown.leg.uniqueid == linkedid), None)
                if linkedid in self._ended or first is None:
                    # Without its first channel (the caller hung up while we were away)
                    # who called whom is unknowable and only the teardown is left: not
                    # adopted, so the reconciler ends it in the journal as it was written.
                    continue
                call = self._new_call(first.leg, now, stamped=False)
                # Its times are the PBX's: the oldest leg has existed for the whole call.
                oldest = max((s.duration_s or 0) for s in legs)
                call.first_seen = now - timedelta(seconds=oldest)
                self._maybe_start(call, out, force=True)
            live = {shown.leg.uniqueid for shown in legs}
            for uid in list(call.channels):
                if uid not in live:  # hung up while we were away
                    call.gone[uid] = call.channels.pop(uid)
            for shown in legs:
                uid = shown.leg.uniqueid
                channel = call.channels.get(uid)
                if channel is None:
                    channel = self._channel(shown.leg)
                    call.channels[uid] = channel
                    self._by_uid[uid] = linkedid
                    if call.client_uid is None and channel.kind == "trunk":
                        call.client_uid = uid
                channel.bridge = shown.bridge
                if shown.leg.state == "Ringing" and channel.ext:
                    self._ringing(call, channel.ext, _on_call_clock(call, now), out)
            # Answers (and transfers) that happened while we were away; repeats are ignored.
            for shown in legs:
                channel = call.channels[shown.leg.uniqueid]
                if channel.bridge:
                    at = _answered_at(shown, now) if adopted else now
                    self._answered_by(call, channel, _on_call_clock(call, at), out)
        for call in list(self._calls.values()):
            if call.call_id not in by_linked:
                call.gone.update(call.channels)
                call.channels.clear()
                call.ending_since, call.end_at = now, _on_call_clock(call, now)
                self._end(call, out)
        return out

    # ------------------------------------------------------------- internals
    def _channel(self, leg: rec.Leg) -> _Channel:
        tech, _, rest = leg.channel.partition("/")
        resource = rest.rpartition("-")[0] if "-" in rest else rest
        ext: str | None = None
        if tech == "Local":
            kind = "local"
            target = rest.partition("@")[0]
            ext = target if self._ext_re.fullmatch(target) else None
        elif leg.context in self._trunk_contexts:
            kind = "trunk"
        elif self._ext_re.fullmatch(resource):
            kind, ext = "ext", resource
        else:
            kind = "trunk" if tech in ("PJSIP", "SIP", "IAX2", "DAHDI") else "other"
        return _Channel(leg.channel, leg.uniqueid, kind, ext, leg.context, leg.exten)

    def _new_call(self, leg: rec.Leg, at: datetime, *, stamped: bool) -> _Call:
        first = self._channel(leg)
        start = at if stamped else (epoch_of(leg.linkedid) or at)
        call = _Call(call_id=leg.linkedid, start_at=start, first_seen=at, first=first)
        self._calls[leg.linkedid] = call
        self._unstarted.add(leg.linkedid)
        if first.kind != "trunk":
            self._unstarted_placed.add(leg.linkedid)
        call.channels[first.uniqueid] = first
        self._by_uid[first.uniqueid] = leg.linkedid
        if first.kind == "trunk":
            call.direction = ev.Direction.INBOUND
            call.client_uid = first.uniqueid
            call.caller, call.caller_name = leg.caller_num, leg.caller_name
            call.did = call.callee = leg.exten or None
        else:
            call.caller = first.ext or leg.caller_num
            call.current_agent = first.ext
        return call

    def _maybe_start(self, call: _Call, out: Out, *, force: bool = False) -> None:
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
        self._unstarted_placed.discard(call.call_id)
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

    def _emit(self, call: _Call, event: ev.CallEvent, out: Out) -> None:
        if call.started:
            out.append(event)
        else:
            call.pending.append(event)

    def _base(self, call: _Call, at: datetime) -> _Base:
        return {"call_id": call.call_id, "at": at, "crm_call_id": call.crm_call_id}

    def _decide(self, call: _Call, direction: ev.Direction, callee: str | None) -> None:
        if call.direction is None:
            call.direction = direction
            call.callee = call.callee or callee

    def _ringing(self, call: _Call, agent: str, at: datetime, out: Out) -> None:
        if agent in call.ringing:
            return
        call.ringing.add(agent)
        self._emit(
            call,
            ev.CallRinging(
                **self._base(call, at),
                agent=agent,
                caller=call.caller,
                caller_name=call.caller_name,
            ),
            out,
        )

    def _answered_by(self, call: _Call, channel: _Channel, at: datetime, out: Out) -> None:
        agent = channel.ext
        if channel.kind == "trunk":
            # The external party of an outbound call answered.
            outbound = call.direction is ev.Direction.OUTBOUND
            if outbound and channel.uniqueid == call.client_uid and not call.answered:
                call.answered = True
                call.first_answer_at = at
                if call.first.ext:
                    call.talking[call.first.ext] = at
                self._emit(call, ev.CallAnswered(**self._base(call, at), agent=None), out)
            return
        if agent is None or channel.uniqueid == call.first.uniqueid:
            return  # the caller's own leg, or a helper channel
        if agent in call.agents:
            return
        call.agents.append(agent)
        call.talking[agent] = at
        call.ringing.discard(agent)
        call.current_agent = agent
        if call.direction is not ev.Direction.OUTBOUND and not call.answered:
            call.answered = True
            call.first_answer_at = at
            call.answered_by = agent
        self._emit(call, ev.CallAnswered(**self._base(call, at), agent=agent), out)

    def _transferred(self, call: _Call, to: str, kind: str, at: datetime, out: Out) -> None:
        call.last_transfer = to
        self._emit(
            call,
            ev.CallTransferred(
                **self._base(call, at), from_agent=call.current_agent, to_agent=to, kind=kind
            ),
            out,
        )

    # ---------------------------------------------------------------- events
    def _dispatch(self, call: _Call, record: rec.Record, at: datetime, out: Out) -> None:
        # By the record's class, one dict lookup: a chain of isinstance tests cost up to
        # seven per event.
        on = self._handlers.get(type(record))
        if on is not None:
            on(call, record, at, out)

    def _on_dial(self, call: _Call, dial: rec.Dial, at: datetime, out: Out) -> None:
        if dial.name == "DialBegin":
            self._on_dialbegin(call, dial, at, out)
        else:
            self._on_dialend(call, dial, at, out)

    def _on_bridge(self, call: _Call, bridge: rec.Bridge, at: datetime, out: Out) -> None:
        if bridge.name == "BridgeEnter":
            self._on_bridgeenter(call, bridge, at, out)
        else:
            self._on_bridgeleave(call, bridge, at, out)

    def _on_channel(self, call: _Call, record: rec.ChannelRecord, at: datetime, out: Out) -> None:
        name = record.name
        if name == "Newchannel":
            self._on_newchannel(call, record.leg, out)
        elif name == "NewCallerid":
            self._on_newcallerid(call, record.leg)
        elif name == "HangupRequest":
            self._on_hangup_request(call, record.leg)

    def _on_queue(self, call: _Call, record: rec.QueueRecord, at: datetime, out: Out) -> None:
        if record.leg.uniqueid != call.client_uid:
            return
        call.queue = record.queue or call.queue
        if record.hold_s is not None:
            call.hold_s += record.hold_s
        if record.name == "QueueCallerAbandon":
            # Also sent on the queue's own timeout; QUEUESTATUS tells them apart.
            call.abandoned = True

    def _on_hangup_request(self, call: _Call, leg: rec.Leg) -> None:
        # The caller hangs up (a CANCEL: cause 127) while phones ring.
        if leg.uniqueid == call.client_uid and not call.answered and call.ringing:
            call.abandoned = True

    def _on_newchannel(self, call: _Call, leg: rec.Leg, out: Out) -> None:
        if leg.uniqueid in call.channels:
            return
        channel = self._channel(leg)
        call.channels[leg.uniqueid] = channel
        self._by_uid[leg.uniqueid] = call.call_id
        if channel.kind == "trunk" and call.client_uid is None:
            call.client_uid = leg.uniqueid
            if call.first.kind != "trunk":
                self._decide(call, ev.Direction.OUTBOUND, None)
                self._maybe_start(call, out)

    def _on_newcallerid(self, call: _Call, leg: rec.Leg) -> None:
        if leg.uniqueid == call.client_uid and call.direction is ev.Direction.INBOUND:
            call.caller = leg.caller_num or call.caller
            call.caller_name = leg.caller_name or call.caller_name

    def _on_newexten(self, call: _Call, record: rec.Newexten, at: datetime, out: Out) -> None:
        leg = record.leg
        channel = call.channels.get(leg.uniqueid)
        if channel is None:
            return
        channel.context, channel.exten = leg.context, leg.exten
        if channel is call.first and call.first.kind != "trunk" and leg.exten not in ("s", ""):
            # A call placed from an extension: the dialplan now shows what was dialled.
            if call.direction is None:
                internal = self._ext_re.fullmatch(leg.exten) is not None
                direction = ev.Direction.INTERNAL if internal else ev.Direction.OUTBOUND
                self._decide(call, direction, leg.exten)
            call.callee = call.callee or leg.exten
            self._maybe_start(call, out)

    def _on_varset(self, call: _Call, record: rec.VarSet, at: datetime, out: Out) -> None:
        variable, value = record.variable, record.value
        if variable == "MIXMONITOR_FILENAME" and value and value not in call.recordings:
            call.recordings.add(value)
            self._maybe_start(call, out, force=call.first.kind == "trunk")
            self._emit(call, ev.RecordingStarted(**self._base(call, at), file=value), out)
        elif variable == "QUEUESTATUS" and record.leg.uniqueid == call.client_uid:
            call.queue_timeout = value == "TIMEOUT"
        elif variable == "CRM_CALL_ID" and value and call.crm_call_id is None:
            call.crm_call_id = value
            request = self._by_crm.get(value)
            if call.first.kind != "trunk":
                self._decide(call, ev.Direction.OUTBOUND, request.number if request else None)
                if request is not None:
                    self._maybe_start(call, out)

    def _on_dialbegin(self, call: _Call, dial: rec.Dial, at: datetime, out: Out) -> None:
        dest = call.channels.get(dial.dest.uniqueid)
        if dest is None:
            return
        source_uid = dial.leg.uniqueid if dial.leg else None
        if dest.kind == "trunk":
            if call.first.kind != "trunk":
                self._decide(call, ev.Direction.OUTBOUND, dial.dial_string or None)
                self._maybe_start(call, out)
                if call.crm_call_id is not None and not call.dialling:
                    # An Originate's dialplan runs once the manager picked up.
                    call.dialling = True
                    dialling = ev.CallDialling(
                        **self._base(call, at), agent=call.first.ext, number=call.callee
                    )
                    self._emit(call, dialling, out)
            return
        agent = dest.ext
        if agent is None:
            return
        call.dialled = True
        if source_uid is not None and source_uid in (call.client_uid, call.first.uniqueid):
            call.dials += 1
        if call.first.kind != "trunk" and source_uid == call.first.uniqueid:
            self._decide(call, ev.Direction.INTERNAL, agent)
        if source_uid is None and dest is call.first and call.crm_call_id is not None:
            # An Originate ringing the agent's own phone first.
            self._decide(call, ev.Direction.OUTBOUND, None)
        self._maybe_start(call, out, force=call.first.kind == "trunk")
        if agent in call.agents and dest is not call.first:
            return  # rings again for an agent who already talked (a queue retry)
        if (
            call.direction is not ev.Direction.OUTBOUND
            and dest is not call.first
            and call.agents
            and agent not in call.ringing
            and call.last_transfer != agent
        ):
            # A client leg that talked to one agent and now rings another was moved.
            client = call.channels.get(call.client_uid or "")
            kind = "redirect" if client is not None and client.bridge is None else "blind"
            self._transferred(call, agent, kind, at, out)
        self._ringing(call, agent, at, out)

    def _on_dialend(self, call: _Call, dial: rec.Dial, at: datetime, out: Out) -> None:
        dest = call.channels.get(dial.dest.uniqueid)
        if dest is None:
            return
        if dest.ext:
            call.ringing.discard(dest.ext)
        if dest is call.first:
            # The Originate's ring of the agent: not the client's answer.
            call.agent_up = call.agent_up or dial.status == "ANSWER"
            return
        source_uid = dial.leg.uniqueid if dial.leg else None
        client_side = dest.kind == "trunk" or source_uid in (call.client_uid, call.first.uniqueid)
        # A CANCEL to the queue's losers after one answered must not hide the ANSWER.
        if client_side and (dial.status != "CANCEL" or not call.last_dial):
            call.last_dial = dial.status
        if dial.status == "ANSWER":
            self._answered_by(call, dest, at, out)

    def _on_bridgeenter(self, call: _Call, bridge: rec.Bridge, at: datetime, out: Out) -> None:
        channel = call.channels.get(bridge.leg.uniqueid)
        if channel is None:
            return
        channel.bridge = bridge.bridge
        channel.context, channel.exten = bridge.leg.context, bridge.leg.exten
        if channel is call.first:
            call.agent_up = True
        if channel.kind == "ext" or (
            channel.kind == "trunk" and call.direction is ev.Direction.OUTBOUND
        ):
            self._answered_by(call, channel, at, out)

    def _on_bridgeleave(self, call: _Call, bridge: rec.Bridge, at: datetime, out: Out) -> None:
        leg = bridge.leg
        channel = call.channels.get(leg.uniqueid)
        if channel is None:
            return
        channel.bridge = None
        moved = (leg.context, leg.exten) != (channel.context, channel.exten)
        channel.context, channel.exten = leg.context, leg.exten
        if (
            moved
            and channel.uniqueid == call.client_uid
            and call.direction is ev.Direction.INBOUND
            and self._ext_re.fullmatch(leg.exten)
            and leg.exten != call.current_agent
            and call.last_transfer != leg.exten
        ):
            # The client leg was sent elsewhere in the dialplan while talking: a Redirect.
            self._transferred(call, leg.exten, "redirect", at, out)

    def _on_hangup(self, call: _Call, hangup: rec.Hangup, at: datetime, out: Out) -> None:
        uid = hangup.leg.uniqueid
        channel = call.channels.pop(uid, None)
        if channel is None:
            return
        channel.cause = hangup.cause
        call.gone[uid] = channel
        if channel.ext:
            call.ringing.discard(channel.ext)
            self._stop_talking(call, channel.ext, at)
        client_leg = uid == call.client_uid or channel is call.first
        if client_leg and not call.answered:
            # The client-facing leg went first while agents still rang: the caller gave up.
            call.abandoned = call.abandoned or any(c.kind == "ext" for c in call.channels.values())

    def _transfer(self, transfer: rec.Transfer, now: datetime, out: Out) -> None:
        call = self._calls.get(transfer.linkedid)
        if not transfer.ok or call is None:
            return
        at = transfer.stamp or _on_call_clock(call, now)
        if transfer.name == "BlindTransfer":
            target, kind = transfer.to_extension, "blind"
        else:
            target, kind = _ext_of(transfer.to_channel, self._ext_re) or "", "attended"
        if not target or call.last_transfer == target:
            return
        call.current_agent = _ext_of(transfer.from_channel, self._ext_re) or call.current_agent
        self._transferred(call, target, kind, at, out)
        if kind == "attended" and target not in call.agents:
            # The target's leg belongs to the consultation call's Linkedid: it talks now.
            call.agents.append(target)
            call.current_agent = target
            call.talking[target] = at
            self._emit(call, ev.CallAnswered(**self._base(call, at), agent=target), out)

    def _originate_result(self, result: rec.OriginateResult, at: datetime, out: Out) -> None:
        request = self._originates.pop(result.action_id, None)
        if request is not None:
            self._by_crm.pop(request.crm_call_id, None)
        if result.ok:
            return  # the call's own events follow
        linkedid = self._by_uid.get(result.uniqueid) if result.uniqueid else None
        call = self._calls.get(linkedid) if linkedid else None
        crm_call_id = request.crm_call_id if request else (call.crm_call_id if call else None)
        if crm_call_id is not None and crm_call_id in self._failed:
            return  # its call ended first and said so already
        self._remember_failed(crm_call_id)
        out.append(
            ev.OriginateFailed(
                call_id=linkedid or result.uniqueid or crm_call_id or result.action_id,
                at=at,
                crm_call_id=crm_call_id,
                reason=originate_reason(result.reason),
            )
        )

    def _remember_failed(self, crm_call_id: str | None) -> None:
        if crm_call_id is None:
            return
        self._failed[crm_call_id] = None
        if len(self._failed) > 10_000:
            self._failed.pop(next(iter(self._failed)))

    def _cdr(self, cdr: rec.Cdr, out: Out) -> None:
        self._cdr_seen = True
        linkedid = self._by_uid.get(cdr.uniqueid)
        call = self._calls.get(linkedid) if linkedid else None
        if call is None:
            return
        call.cdrs.append(cdr)
        if call.ending_since is not None and not self._waiting_cdr(call):
            self._end(call, out)

    def _waiting_cdr(self, call: _Call) -> bool:
        if not self._expect_cdr or call.stamped:
            return False
        if not (call.dialled or call.answered or call.first.kind != "trunk"):
            return False  # nobody was dialled: no Cdr comes (cdr.conf `unanswered = no`)
        # One Cdr per party the caller's leg dialled (queue rounds, dial retries); Asterisk
        # may post the last ones after the final Hangup.
        return len(call.cdrs) < max(call.dials, 1)

    def _stop_talking(self, call: _Call, agent: str, at: datetime) -> None:
        since = call.talking.pop(agent, None)
        if since is not None:
            seconds = max((at - since).total_seconds(), 0.0)
            call.talked[agent] = call.talked.get(agent, 0.0) + seconds

    # ------------------------------------------------------------------- end
    def _end(self, call: _Call, out: list[ev.CallEvent]) -> None:
        if self._calls.pop(call.call_id, None) is None:
            return
        self._unstarted.discard(call.call_id)
        self._unstarted_placed.discard(call.call_id)
        failed = bool(call.crm_call_id) and call.first.kind != "trunk" and not call.agent_up
        if call.crm_call_id and call.crm_call_id in self._by_crm and not failed:
            # Its OriginateResponse never came (link lost): forget the request with the call.
            # (A failed one keeps it: its late Failure must find it, and say nothing more.)
            request = self._by_crm.pop(call.crm_call_id)
            for action_id in [a for a, r in self._originates.items() if r is request]:
                del self._originates[action_id]
        self._ended[call.call_id] = None
        if len(self._ended) > 10_000:
            self._ended.pop(next(iter(self._ended)))
        for uid in [*call.channels, *call.gone]:
            self._by_uid.pop(uid, None)
        end_at = call.end_at or call.last_at or call.start_at
        client = call.gone.get(call.client_uid or "") or call.gone.get(call.first.uniqueid)
        cause = client.cause if client is not None and client.cause is not None else 0
        if failed:
            # The CRM's Originate never reached the agent: that is its whole story.
            if call.crm_call_id not in self._failed:
                self._remember_failed(call.crm_call_id)
                first = call.gone.get(call.first.uniqueid)
                reason = _AGENT_FAILURE.get(first.cause if first and first.cause else 0, "failed")
                out.append(ev.OriginateFailed(**self._base(call, end_at), reason=reason))
            return
        self._maybe_start(call, out, force=True)
        disposition, unanswered = self._disposition(call, cause)
        for agent in list(call.talking):
            self._stop_talking(call, agent, end_at)
        ring_s, talk_s, talk_by_agent = self._durations(call, end_at)
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
                unanswered=unanswered,
                queue=call.queue,
                caller_name=call.caller_name,
                talk_by_agent=talk_by_agent,
            )
        )

    def _disposition(self, call: _Call, cause: int) -> tuple[ev.Disposition, ev.Unanswered | None]:
        D, U = ev.Disposition, ev.Unanswered
        if call.answered:
            return D.ANSWERED, None
        dial = call.last_dial
        if dial == "BUSY" or cause == 17:
            return D.BUSY, U.BUSY
        if call.queue_timeout:
            return D.MISSED, U.QUEUE_TIMEOUT
        # The caller gave up: before the cause, which for a CANCEL is 127.
        if call.abandoned or dial == "CANCEL":
            return D.ABANDONED, U.ABANDONED_QUEUE if call.queue else U.ABANDONED_RINGING
        if dial == "NOANSWER" or cause in (18, 19):
            return D.MISSED, U.NO_ANSWER
        if dial in ("CONGESTION", "CHANUNAVAIL") or cause in _FAILED_CAUSES:
            return D.FAILED, None
        if call.ringing or call.last_dial:
            return D.MISSED, U.NO_ANSWER
        if cause == 16:
            return D.ABANDONED, U.ABANDONED_QUEUE if call.queue else U.ABANDONED_EARLY
        return D.FAILED, None

    def _durations(self, call: _Call, end_at: datetime) -> tuple[float, float, dict[str, float]]:
        if not call.stamped and call.cdrs:
            ring, talk, by_agent = _cdr_durations(call, self._ext_re)
        else:
            total = max((end_at - call.start_at).total_seconds(), 0.0)
            if call.first_answer_at is None:
                ring, talk = total, 0.0
            else:
                ring = max((call.first_answer_at - call.start_at).total_seconds(), 0.0)
                talk = max(total - ring, 0.0)
            by_agent = {agent: round(s, 3) for agent, s in call.talked.items()}
        if call.direction is ev.Direction.INBOUND:
            # The queue's own count of the caller's wait there (no Cdr for an unrung one).
            ring = max(ring, call.hold_s)
        return ring, talk, by_agent


def _on_call_clock(call: _Call, now: datetime) -> datetime:
    """A receive time on the call's own (PBX) clock: its start plus the time since."""
    if call.stamped:
        return now
    return call.start_at + (now - call.first_seen)


def _cdr_durations(call: _Call, ext_re: re.Pattern[str]) -> tuple[float, float, dict[str, float]]:
    """The wait, talk and talk per agent from Asterisk's CDRs of the leg the call is
    billed on: one Cdr per dialled party and attempt (queue rounds, dial retries)."""
    owner = call.client_uid if call.first.kind == "trunk" else call.first.uniqueid
    cdrs = [c for c in call.cdrs if c.uniqueid == owner] or call.cdrs
    answered = [c for c in cdrs if c.answered and c.billsec > 0] or [c for c in cdrs if c.answered]
    starts = [c.started for c in cdrs if c.started is not None]
    begin = min(starts) if starts else None
    if not answered:
        ends = [c.ended for c in cdrs if c.ended is not None]
        if begin is not None and ends:
            return (max(ends) - begin).total_seconds(), 0.0, {}
        return max(c.duration for c in cdrs), 0.0, {}
    first = answered[0]
    if begin is not None and first.answered_at is not None:
        ring = (first.answered_at - begin).total_seconds()
    else:
        ring = first.duration - first.billsec
    by_agent: dict[str, float] = {}
    outbound_agent = call.first.ext if call.first.kind != "trunk" else None
    for cdr in answered:
        agent = _ext_of(cdr.destination, ext_re) or outbound_agent
        if agent is not None:
            by_agent[agent] = by_agent.get(agent, 0.0) + cdr.billsec
    # Later CDRs of the same leg (after a Redirect) continue the same conversation.
    return ring, sum(c.billsec for c in answered), by_agent


def _answered_at(shown: rec.ShownChannel, now: datetime) -> datetime:
    """When a bridged leg of an adopted call answered: its bridged time where the PBX
    gives one, else the leg's age (an agent leg rings first: a talk time at most that)."""
    seconds = shown.bridged_s if shown.bridged_s is not None else shown.duration_s
    return now - timedelta(seconds=seconds or 0)


def _uid_key(uid: str) -> tuple[int, int]:
    head, _, tail = uid.partition(".")
    return (int(head) if head.isdigit() else 0, int(tail) if tail.isdigit() else 0)


def _ext_of(channel: str, pattern: re.Pattern[str]) -> str | None:
    _, _, rest = channel.partition("/")
    resource = rest.partition("@")[0] if channel.startswith("Local/") else rest.rpartition("-")[0]
    return resource if pattern.fullmatch(resource) else None
