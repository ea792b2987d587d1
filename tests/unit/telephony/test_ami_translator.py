"""Every real Asterisk capture through the translator, checked against what the
captures' README says happened."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from typing import Any

import pytest
from support.captures import MONITOR, NOW, capture_events, translate

from telephony import events as ev
from telephony.ami import records as rec
from telephony.ami.frames import Event
from telephony.ami.simulator import prepare
from telephony.ami.translator import CallTranslator, PendingOriginate

# What the README says happened in each call scenario.
EXPECTED: dict[str, dict[str, Any]] = {
    "incoming-answered": dict(
        call_id="1795386673.0",
        direction=ev.Direction.INBOUND,
        caller="+79161234567",
        callee="74951234567",
        did="74951234567",
        ringing=["101"],
        answered=["101"],
        transfers=[],
        disposition=ev.Disposition.ANSWERED,
        cause=16,
        agents=("101",),
        answered_by="101",
        ring_s=2,
        talk_s=3,
        recording=MONITOR + "1795386673.0.wav",
    ),
    "incoming-missed": dict(
        call_id="1795386683.2",
        direction=ev.Direction.INBOUND,
        caller="+79167654321",  # sent as 89167654321, normalized by the dialplan
        callee="74951234567",
        did="74951234567",
        ringing=["101"],
        answered=[],
        transfers=[],
        disposition=ev.Disposition.MISSED,
        cause=19,
        agents=(),
        answered_by=None,
        ring_s=15,
        talk_s=0,
        recording=MONITOR + "1795386683.2.wav",
    ),
    "incoming-busy": dict(
        call_id="1795386712.6",
        direction=ev.Direction.INBOUND,
        caller="+79035556677",
        callee="74951234567",
        did="74951234567",
        ringing=["101"],
        answered=[],
        transfers=[],
        disposition=ev.Disposition.BUSY,
        cause=17,
        agents=(),
        answered_by=None,
        ring_s=0,
        talk_s=0,
        recording=MONITOR + "1795386712.6.wav",
    ),
    "incoming-agi-routed": dict(
        call_id="1795386718.8",
        direction=ev.Direction.INBOUND,
        caller="+79161234567",
        callee="74951234568",
        did="74951234568",
        ringing=["102"],
        answered=["102"],
        transfers=[],
        disposition=ev.Disposition.ANSWERED,
        cause=16,
        agents=("102",),
        answered_by="102",
        ring_s=2,
        talk_s=3,
        recording=MONITOR + "1795386718.8.wav",
    ),
    "click-to-call": dict(
        call_id="1795386728.10",
        crm_call_id="crm-5001",
        direction=ev.Direction.OUTBOUND,
        caller="102",
        callee="79161234567",
        did=None,
        ringing=["102"],  # the Originate rings the manager's phone first
        answered=[None],  # then the external party answers
        transfers=[],
        disposition=ev.Disposition.ANSWERED,
        cause=16,  # the external party hung up
        agents=("102",),
        answered_by=None,
        ring_s=2,  # 102 rang 2 s
        talk_s=4,  # Asterisk bills from 102's answer: 1.5 s carrier ring + 2.5 s talk
        recording=MONITOR + "1795386728.10.wav",
    ),
    "redirect": dict(
        call_id="1795386739.12",
        direction=ev.Direction.INBOUND,
        caller="+79169990011",
        callee="74951234567",
        did="74951234567",
        ringing=["101", "103"],
        answered=["101", "103"],
        transfers=[("101", "103", "redirect")],
        disposition=ev.Disposition.ANSWERED,
        cause=16,
        agents=("101", "103"),
        answered_by="101",
        ring_s=2,
        talk_s=14,  # the caller hung up 14 s after the first answer
        recording=MONITOR + "1795386739.12.wav",
    ),
    "queue-call": dict(
        call_id="1795386780.18",
        direction=ev.Direction.INBOUND,
        caller="+74951112233",
        callee="74951234569",
        did="74951234569",
        ringing=["101", "102", "103"],  # ring-all: one DialBegin per member
        answered=["102"],  # 101 and 103 lost with cause 26
        transfers=[],
        disposition=ev.Disposition.ANSWERED,
        cause=16,
        agents=("102",),
        answered_by="102",
        ring_s=3,
        talk_s=4,
        recording=MONITOR + "1795386780.18.wav",
    ),
}


def check_call(out: list[ev.CallEvent], expected: dict[str, Any]) -> None:
    call_id = expected["call_id"]
    mine = [e for e in out if e.call_id == call_id]
    assert isinstance(mine[0], ev.CallStarted)
    assert isinstance(mine[-1], ev.CallEnded)
    assert [type(e) for e in mine].count(ev.CallStarted) == 1
    assert [type(e) for e in mine].count(ev.CallEnded) == 1
    crm_call_id = expected.get("crm_call_id")
    assert all(e.crm_call_id == crm_call_id for e in mine)
    started, ended = mine[0], mine[-1]
    assert isinstance(started, ev.CallStarted) and isinstance(ended, ev.CallEnded)
    assert started.direction == expected["direction"]
    assert (started.caller, started.callee, started.did) == (
        expected["caller"],
        expected["callee"],
        expected["did"],
    )
    assert started.at == datetime.fromtimestamp(int(call_id.split(".")[0]), UTC)
    assert [e.agent for e in mine if isinstance(e, ev.CallRinging)] == expected["ringing"]
    for ringing in (e for e in mine if isinstance(e, ev.CallRinging)):
        assert ringing.caller == expected["caller"]
    assert [e.agent for e in mine if isinstance(e, ev.CallAnswered)] == expected["answered"]
    assert [
        (e.from_agent, e.to_agent, e.kind) for e in mine if isinstance(e, ev.CallTransferred)
    ] == expected["transfers"]
    assert [e.file for e in mine if isinstance(e, ev.RecordingStarted)] == [expected["recording"]]
    assert ended.direction == expected["direction"]
    assert ended.disposition == expected["disposition"]
    assert ended.cause == expected["cause"]
    assert (ended.caller, ended.callee) == (expected["caller"], expected["callee"])
    assert ended.agents == expected["agents"]
    assert ended.answered_by == expected["answered_by"]
    assert ended.ring_s == pytest.approx(expected["ring_s"], abs=1.0)
    assert ended.talk_s == pytest.approx(expected["talk_s"], abs=1.0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_replayed_whole(name: str) -> None:
    out = translate(capture_events(name))
    check_call(out, EXPECTED[name])
    assert {e.call_id for e in out} == {EXPECTED[name]["call_id"]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_replayed_byte_by_byte_gives_the_same_events(name: str) -> None:
    assert translate(capture_events(name, chunk=1)) == translate(capture_events(name))


@pytest.mark.parametrize(
    "name", ["bad-login", "core-show-version", "phones-register", "core-show-channels"]
)
def test_captures_without_calls_give_no_call_events(name: str) -> None:
    assert translate(capture_events(name)) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [("incoming-answered", "queue-call"), ("redirect", "click-to-call")],
)
def test_two_captures_interleaved_give_each_call_its_own_events(first: str, second: str) -> None:
    a, b = capture_events(first), capture_events(second)
    mixed = [e for pair in zip_longest(a, b) for e in pair if e is not None]
    out = translate(mixed)
    for name in (first, second):
        check_call(out, EXPECTED[name])
        call_id = EXPECTED[name]["call_id"]
        alone = translate(capture_events(name))
        assert [e for e in out if e.call_id == call_id] == alone


def test_all_call_captures_at_once_through_one_translator() -> None:
    translator = CallTranslator()
    out = translate([e for name in sorted(EXPECTED) for e in capture_events(name)], translator)
    for expected in EXPECTED.values():
        check_call(out, expected)
    assert translator.live_calls == []


def _edit(event: Event, **changes: str) -> Event:
    return Event({**event.headers, **changes}, event.repeated)


def test_caller_hanging_up_while_ringing_is_abandoned() -> None:
    events = capture_events("incoming-missed")
    cut = next(i for i, e in enumerate(events) if e.name == "DialEnd")
    dial_end = _edit(events[cut], DialStatus="CANCEL")
    agent_hangup = next(e for e in events if e.name == "Hangup" and "101" in e["Channel"])
    trunk_hangup = next(e for e in events if e.name == "Hangup" and "trunk" in e["Channel"])
    cdr = next(e for e in events if e.name == "Cdr")
    out = translate(
        [
            *events[:cut],
            dial_end,
            _edit(agent_hangup, Cause="16"),
            _edit(cdr, Duration="4"),
            _edit(trunk_hangup, Cause="16"),
        ]
    )
    ended = out[-1]
    assert isinstance(ended, ev.CallEnded)
    assert ended.disposition == ev.Disposition.ABANDONED
    assert ended.cause == 16 and ended.agents == () and ended.answered_by is None


def test_congestion_is_failed() -> None:
    events = capture_events("incoming-busy")
    out = translate(
        [
            _edit(e, DialStatus="CONGESTION")
            if e.name == "DialEnd"
            else _edit(e, Cause="34")
            if e.name == "Hangup"
            else e
            for e in events
        ]
    )
    ended = out[-1]
    assert isinstance(ended, ev.CallEnded) and ended.disposition == ev.Disposition.FAILED
    assert ended.cause == 34


def test_originated_call_waits_for_its_late_cdr() -> None:
    events = capture_events("click-to-call")
    translator = CallTranslator(cdr_grace_s=2.0)
    cdr = next(i for i, e in enumerate(events) if e.name == "Cdr")
    before = translate(events[:cdr], translator)
    assert not any(isinstance(e, ev.CallEnded) for e in before)  # the last Hangup came first
    assert translator.tick(NOW + timedelta(seconds=1)) == []
    after = translate(events[cdr:], translator)
    assert [type(e) for e in after] == [ev.CallEnded]
    assert isinstance(after[0], ev.CallEnded) and after[0].talk_s == 4


def test_without_a_cdr_the_call_ends_after_the_grace_period() -> None:
    events = [e for e in capture_events("click-to-call") if e.name != "Cdr"]
    translator = CallTranslator(cdr_grace_s=2.0)
    out = translate(events, translator)
    assert not any(isinstance(e, ev.CallEnded) for e in out)
    assert translator.tick(NOW + timedelta(seconds=1)) == []
    (ended,) = translator.tick(NOW + timedelta(seconds=2))
    assert isinstance(ended, ev.CallEnded) and ended.disposition == ev.Disposition.ANSWERED
    assert translator.tick(NOW + timedelta(seconds=3)) == []  # ends once
    assert translator.live_calls == []


def test_timestamp_headers_give_the_times() -> None:
    events = capture_events("incoming-answered")
    base = 1795386673.0
    answer = next(i for i, e in enumerate(events) if e.get("DialStatus") == "ANSWER")
    hangup = next(i for i, e in enumerate(events) if e.name == "HangupRequest")
    stamped = []
    for i, e in enumerate(events):
        # Answered 2.25 s after the start, hung up 5.5 s after it.
        offset = 0.0 if i < answer else 2.25 if i < hangup else 5.5
        stamped.append(_edit(e, Timestamp=f"{base + offset:.6f}"))
    out = translate(stamped)
    ended = out[-1]
    assert isinstance(ended, ev.CallEnded)
    assert ended.ring_s == pytest.approx(2.25)
    assert ended.talk_s == pytest.approx(3.25)
    assert ended.at == datetime.fromtimestamp(base + 5.5, UTC)


def test_originate_failure_becomes_originate_failed_with_the_crm_id() -> None:
    translator = CallTranslator()
    request = PendingOriginate("crm-77", "104", "79160000000")
    translator.expect_originate("orig-1", request)
    failure = Event(
        {
            "Event": "OriginateResponse",
            "ActionID": "orig-1",
            "Response": "Failure",
            "Channel": "PJSIP/104",
            "Reason": "0",
            "Uniqueid": "<null>",
        }
    )
    (failed,) = translator.feed(failure, NOW)
    assert failed == ev.OriginateFailed(
        call_id="crm-77", at=NOW, crm_call_id="crm-77", reason="extension_offline"
    )
    busy = _edit(failure, ActionID="orig-2", Reason="5")
    translator.expect_originate("orig-2", replace(request, crm_call_id="crm-78"))
    assert [e.reason for e in translator.feed(busy, NOW)] == ["agent_busy"]  # type: ignore[attr-defined]
    # A success gives no event of its own: the call's events follow.
    translator.expect_originate("orig-3", replace(request, crm_call_id="crm-79"))
    assert translator.feed(_edit(failure, ActionID="orig-3", Response="Success"), NOW) == []


def test_registered_originate_starts_with_the_requested_number() -> None:
    translator = CallTranslator()
    translator.expect_originate("c2c-0001", PendingOriginate("crm-5001", "102", "79161234567"))
    out = translate(capture_events("click-to-call"), translator)
    assert isinstance(out[0], ev.CallStarted) and out[0].callee == "79161234567"
    check_call(out, EXPECTED["click-to-call"])


def test_resync_rebuilds_live_calls_without_duplicates() -> None:
    rows = [e for e in capture_events("core-show-channels") if e.name == "CoreShowChannel"]
    translator = CallTranslator()
    first = translator.resync(rows, NOW)
    assert [type(e) for e in first] == [ev.CallStarted, ev.CallAnswered]
    started = first[0]
    assert isinstance(started, ev.CallStarted)
    assert (started.call_id, started.direction, started.caller, started.did) == (
        "1795386673.0",
        ev.Direction.INBOUND,
        "+79161234567",
        "74951234567",
    )
    assert translator.client_channel("1795386673.0") == "PJSIP/trunk-00000000"
    assert translator.resync(rows, NOW) == []  # the same picture again: nothing new
    # The rest of the call arrives as usual and ends it once, with nothing repeated.
    rest = translate(capture_events("incoming-answered"), translator)
    assert [type(e) for e in rest] == [ev.RecordingStarted, ev.CallEnded]
    assert translator.resync([], NOW) == []


def test_a_call_joined_after_its_first_channel_is_adopted_whole_not_as_a_leg() -> None:
    """Callcard logs in while the caller's channel exists: the agent's leg announced
    before the CoreShowChannels reply is no call of its own (it once became an internal
    call from 101), and the reply adopts the call as the caller's."""
    events = capture_events("incoming-answered")
    agent_leg = next(
        i for i, e in enumerate(events) if e.name == "Newchannel" and e["Uniqueid"] != e["Linkedid"]
    )
    translator = CallTranslator()
    assert translate(events[agent_leg : agent_leg + 1], translator) == []
    assert translator.live_calls == []
    rows = [e for e in capture_events("core-show-channels") if e.name == "CoreShowChannel"]
    started = translator.resync(rows, NOW)[0]
    assert isinstance(started, ev.CallStarted)
    assert (started.direction, started.caller) == (ev.Direction.INBOUND, "+79161234567")


def test_a_call_listed_without_its_first_channel_is_left_to_the_reconciler() -> None:
    """The caller hung up while Callcard was away and only the agent's leg is still being
    torn down: who called is unknowable, so the call is not adopted (the reconciler ends
    it in the journal as written) and its last events make no call either."""
    rows = [e for e in capture_events("core-show-channels") if e.name == "CoreShowChannel"]
    agent_only = [r for r in rows if r["Uniqueid"] != r["Linkedid"]]
    assert agent_only and len(agent_only) < len(rows)
    translator = CallTranslator()
    assert translator.resync(agent_only, NOW) == []
    assert translator.live_calls == []
    events = capture_events("incoming-answered")
    agent_hangup = [e for e in events if e.name == "Hangup" and e["Uniqueid"] != e["Linkedid"]]
    assert agent_hangup and translate(agent_hangup, translator) == []


def test_resync_ends_a_call_that_hung_up_while_disconnected() -> None:
    events = capture_events("incoming-answered")
    bridged = max(i for i, e in enumerate(events) if e.name == "BridgeEnter")
    translator = CallTranslator()
    before = translate(events[: bridged + 1], translator)
    assert ev.CallAnswered in [type(e) for e in before]
    (ended,) = translator.resync([], NOW)
    assert isinstance(ended, ev.CallEnded)
    assert ended.disposition == ev.Disposition.ANSWERED and ended.agents == ("101",)
    # Late events of that call (a replay) change nothing.
    assert translate(events[bridged + 1 :], translator) == []


def test_blind_and_attended_transfer_events() -> None:
    events = capture_events("incoming-answered")
    bridged = max(i for i, e in enumerate(events) if e.name == "BridgeEnter")
    translator = CallTranslator()
    translate(events[: bridged + 1], translator)
    blind = Event(
        {
            "Event": "BlindTransfer",
            "Result": "Success",
            "TransfererChannel": "PJSIP/101-00000001",
            "TransfereeChannel": "PJSIP/trunk-00000000",
            "TransfereeLinkedid": "1795386673.0",
            "Extension": "104",
            "Context": "internal",
        }
    )
    (moved,) = translator.feed(blind, NOW)
    start = datetime.fromtimestamp(1795386673, UTC)  # the call's clock: all events at NOW
    assert moved == ev.CallTransferred(
        call_id="1795386673.0", at=start, from_agent="101", to_agent="104", kind="blind"
    )
    attended = Event(
        {
            "Event": "AttendedTransfer",
            "Result": "Success",
            "OrigTransfererChannel": "PJSIP/104-00000005",
            "OrigTransfererLinkedid": "1795386673.0",
            "TransferTargetChannel": "PJSIP/105-00000007",
        }
    )
    out = translator.feed(attended, NOW)
    assert [(type(e), getattr(e, "to_agent", getattr(e, "agent", None))) for e in out] == [
        (ev.CallTransferred, "105"),
        (ev.CallAnswered, "105"),
    ]
    assert translator.feed(_edit(blind, Result="Fail"), NOW) == []


def _event(name: str, channel: str = "", uid: str = "", linked: str = "", **more: str) -> Event:
    """A minimal event as Asterisk would send it (only the headers the test needs)."""
    headers = {"Event": name}
    if channel:
        headers |= {"Channel": channel, "Uniqueid": uid, "Linkedid": linked}
    return Event(headers | more)


def test_internal_call_between_extensions() -> None:
    a, b, call = "1795386800.30", "1795386800.31", "1795386800.30"
    out = translate(
        [
            _event(
                "Newchannel",
                "PJSIP/101-00000030",
                a,
                call,
                Context="internal",
                Exten="102",
                CallerIDNum="101",
            ),
            _event(
                "Newexten",
                "PJSIP/101-00000030",
                a,
                call,
                Context="internal",
                Exten="102",
                Application="Dial",
            ),
            _event("Newchannel", "PJSIP/102-00000031", b, call, Context="internal", Exten="s"),
            _event(
                "DialBegin",
                "PJSIP/101-00000030",
                a,
                call,
                DestChannel="PJSIP/102-00000031",
                DestUniqueid=b,
            ),
            _event(
                "DialEnd",
                "PJSIP/101-00000030",
                a,
                call,
                DestChannel="PJSIP/102-00000031",
                DestUniqueid=b,
                DialStatus="ANSWER",
            ),
            _event("Hangup", "PJSIP/102-00000031", b, call, Cause="16"),
            _event("Hangup", "PJSIP/101-00000030", a, call, Cause="16"),
            _event("Cdr", UniqueID=a, Duration="9", BillableSeconds="6", Disposition="ANSWERED"),
        ]
    )
    assert [type(e).__name__ for e in out] == [
        "CallStarted",
        "CallRinging",
        "CallAnswered",
        "CallEnded",
    ]
    started, ended = out[0], out[-1]
    assert isinstance(started, ev.CallStarted) and isinstance(ended, ev.CallEnded)
    assert (started.direction, started.caller, started.callee) == (
        ev.Direction.INTERNAL,
        "101",
        "102",
    )
    assert (ended.disposition, ended.agents, ended.answered_by) == (
        ev.Disposition.ANSWERED,
        ("102",),
        "102",
    )
    assert (ended.ring_s, ended.talk_s) == (3, 6)


def test_queue_member_behind_a_local_channel_rings_and_answers_once() -> None:
    trunk, l1, l2, phone = "1795386900.40", "1795386900.41", "1795386900.42", "1795386900.43"
    call = trunk
    local1, local2 = "Local/101@agents-00000001;1", "Local/101@agents-00000001;2"
    out = translate(
        [
            _event(
                "Newchannel",
                "PJSIP/trunk-00000040",
                trunk,
                call,
                Context="from-trunk",
                Exten="74951234569",
                CallerIDNum="+79161234567",
            ),
            _event("QueueCallerJoin", "PJSIP/trunk-00000040", trunk, call, Queue="sales"),
            _event("Newchannel", local1, l1, call, Context="agents", Exten="101"),
            _event("Newchannel", local2, l2, call, Context="agents", Exten="101"),
            _event(
                "DialBegin",
                "PJSIP/trunk-00000040",
                trunk,
                call,
                DestChannel=local1,
                DestUniqueid=l1,
            ),
            _event("Newchannel", "PJSIP/101-00000044", phone, call, Context="internal", Exten="s"),
            _event(
                "DialBegin", local2, l2, call, DestChannel="PJSIP/101-00000044", DestUniqueid=phone
            ),
            _event(
                "DialEnd",
                local2,
                l2,
                call,
                DestChannel="PJSIP/101-00000044",
                DestUniqueid=phone,
                DialStatus="ANSWER",
            ),
            _event(
                "DialEnd",
                "PJSIP/trunk-00000040",
                trunk,
                call,
                DestChannel=local1,
                DestUniqueid=l1,
                DialStatus="ANSWER",
            ),
            _event("BridgeEnter", local1, l1, call, BridgeUniqueid="b-1"),
            _event("Hangup", "PJSIP/trunk-00000040", trunk, call, Cause="16"),
            _event("Hangup", local1, l1, call, Cause="16"),
            _event("Hangup", local2, l2, call, Cause="16"),
            _event("Hangup", "PJSIP/101-00000044", phone, call, Cause="16"),
            _event(
                "Cdr", UniqueID=trunk, Duration="10", BillableSeconds="8", Disposition="ANSWERED"
            ),
        ]
    )
    assert [type(e).__name__ for e in out] == [
        "CallStarted",
        "CallRinging",
        "CallAnswered",
        "CallEnded",
    ]
    ended = out[-1]
    assert isinstance(ended, ev.CallEnded)
    assert (ended.agents, ended.answered_by, ended.cause) == (("101",), "101", 16)


def test_a_pbx_without_cdrs_stops_delaying_call_ends() -> None:
    translator = CallTranslator(cdr_grace_s=2.0)
    later = NOW + timedelta(seconds=2)
    for _ in range(3):
        events = [e for e in prepare_fresh("incoming-answered") if e.name != "Cdr"]
        out = translate(events, translator)
        assert not any(isinstance(e, ev.CallEnded) for e in out)  # still waiting for a Cdr
        assert [type(e) for e in translator.tick(later)] == [ev.CallEnded]
    # Three calls and never a Cdr: the next call ends on its last Hangup.
    events = [e for e in prepare_fresh("incoming-answered") if e.name != "Cdr"]
    out = translate(events, translator)
    assert isinstance(out[-1], ev.CallEnded) and out[-1].talk_s == 0  # receive times only


def prepare_fresh(name: str) -> list[Event]:
    """A capture with fresh ids (as the simulator replays it)."""
    return [Event(dict(pairs)) for pairs in prepare(name)]


def test_events_are_decoded_into_typed_records_at_the_boundary() -> None:
    events = capture_events("click-to-call")
    originate_dial = next(e for e in events if e.name == "DialBegin")
    record = rec.decode(originate_dial)
    assert isinstance(record, rec.Dial)
    assert record.leg is None  # the Originate's own dial has only Dest* headers
    assert (record.dest.channel, record.dest.linkedid, record.dest.caller_name) == (
        "PJSIP/102-0000000a",
        "1795386728.10",
        "+79161234567",
    )
    response = rec.decode(next(e for e in events if e.name == "OriginateResponse"))
    assert response == rec.OriginateResult(
        name="OriginateResponse",
        stamp=None,
        action_id="c2c-0001",
        ok=True,
        reason=4,
        uniqueid="1795386728.10",
    )
    trunk = next(e for e in events if e.name == "Newchannel" and "trunk" in e["Channel"])
    decoded = rec.decode(trunk)
    assert isinstance(decoded, rec.ChannelRecord)
    assert decoded.leg.caller_num is None  # "<unknown>" on the wire
    assert rec.decode(Event({"Event": "DeviceStateChange", "Device": "PJSIP/101"})) is None
    assert rec.decode(Event({"Event": "Cdr", "UniqueID": "1.1", "Duration": "x"})) is None


def test_originate_whose_agent_never_answers_fails_once_whatever_comes_first() -> None:
    agent, call = "1795387000.50", "1795387000.50"
    leg = {"Channel": "PJSIP/102-00000050", "Uniqueid": agent, "Linkedid": call}
    dest = {"DestChannel": leg["Channel"], "DestUniqueid": agent, "DestLinkedid": call}
    ring = [
        Event({"Event": "Newchannel", **leg, "Context": "internal", "Exten": "s"}),
        Event({"Event": "VarSet", **leg, "Variable": "CRM_CALL_ID", "Value": "crm-60"}),
        Event({"Event": "DialBegin", **dest}),
        Event({"Event": "DialEnd", **dest, "DialStatus": "BUSY"}),
        Event({"Event": "Hangup", **leg, "Cause": "17"}),
    ]
    cdr = Event({"Event": "Cdr", "UniqueID": agent, "Duration": "0", "BillableSeconds": "0"})
    response = Event(
        {
            "Event": "OriginateResponse",
            "ActionID": "orig-9",
            "Response": "Failure",
            "Reason": "5",
            "Uniqueid": agent,
        }
    )
    request = PendingOriginate("crm-60", "102", "79160000000")
    for order in ([*ring, cdr, response], [*ring, response, cdr]):
        translator = CallTranslator()
        translator.expect_originate("orig-9", request)
        out = translate(order, translator)
        assert [type(e).__name__ for e in out] == [
            "CallStarted",
            "CallRinging",
            "OriginateFailed",
        ]
        failed = out[-1]
        assert isinstance(failed, ev.OriginateFailed)
        assert (failed.call_id, failed.crm_call_id, failed.reason) == (call, "crm-60", "agent_busy")
        assert translator.live_calls == [] and translator.tick(NOW + timedelta(hours=1)) == []


def test_an_adopted_call_takes_its_times_from_core_show_channels() -> None:
    """Adopted after a restart 40 s into the call, 30 s after the answer: ring 10 s, and
    talk runs from the answer, not from the moment Callcard came back."""
    rows = [e for e in capture_events("core-show-channels") if e.name == "CoreShowChannel"]
    trunk, agent = (
        _edit(rows[0], Duration="00:00:40"),
        _edit(rows[1], Duration="00:00:38", BridgedDuration="00:00:30"),
    )
    translator = CallTranslator(expect_cdr=False)
    started, answered = translator.resync([trunk, agent], NOW)
    assert isinstance(answered, ev.CallAnswered)
    assert answered.at - started.at == timedelta(seconds=10)
    (ended,) = translator.resync([], NOW + timedelta(seconds=10))
    assert isinstance(ended, ev.CallEnded)
    assert (ended.ring_s, ended.talk_s) == (10.0, 40.0)

    # Asterisk's own CoreShowChannel has no BridgedDuration: the agent leg's age bounds it.
    translator = CallTranslator(expect_cdr=False)
    started, answered = translator.resync([trunk, _edit(rows[1], Duration="00:00:38")], NOW)
    assert answered.at - started.at == timedelta(seconds=2)
