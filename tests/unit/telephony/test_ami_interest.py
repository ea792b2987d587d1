"""The adapter's parser builds only the events the translator reads (its `interest`):
nothing the translator uses is dropped, and a dropped event costs no Event."""

from __future__ import annotations

import ast
import inspect
import sys
from types import FrameType
from typing import Any

import pytest
from support.captures import NOW

from telephony import events as ev
from telephony.ami import devices
from telephony.ami import records as rec
from telephony.ami import translator as tr
from telephony.ami.adapter import AmiAdapter
from telephony.ami.frames import AmiParser, Event, Interest, Message, encode_message, parse_all
from telephony.ami.simulator import CALL_SCENARIOS, CAPTURES, overlapping, prepare
from telephony.ami.translator import CallTranslator

ALL_CAPTURES = sorted(path.name.removesuffix(".ami.txt") for path in CAPTURES.glob("*.ami.txt"))


def read_everything(data: bytes) -> list[ev.CallEvent]:
    """The reference: a translator that decodes and applies every event, unfiltered."""
    translator = CallTranslator()
    out: list[ev.CallEvent] = []
    for message in parse_all(data):
        if isinstance(message, Event) and (record := rec.decode(message)) is not None:
            out += translator.apply(record, NOW)
    return out


def through_interest(data: bytes, chunk: int) -> tuple[list[ev.CallEvent], int]:
    """The adapter's path: the parser builds what the translator's interest admits."""
    translator = CallTranslator()
    parser = AmiParser()
    out: list[ev.CallEvent] = []
    for at in range(0, len(data), chunk):
        for message in parser.stream(data[at : at + chunk], translator.interest):
            if isinstance(message, Event):
                out += translator.feed(message, NOW)
    return out, parser.dropped


@pytest.mark.parametrize("chunk", [1, 997, 1 << 30])
@pytest.mark.parametrize(
    "name", [*ALL_CAPTURES, "every-call-scenario-fresh", "every-call-scenario-overlapping"]
)
def test_dropping_what_the_interest_does_not_admit_changes_no_call_event(
    name: str, chunk: int
) -> None:
    if name.startswith("every-call-scenario"):
        # Calls with fresh ids, back to back or overlapping (a new call every 3 events:
        # some call's start is nearly always held), as the benchmark streams them.
        calls = [prepare(n) for _ in range(3) for n in CALL_SCENARIOS]
        if name.endswith("overlapping"):
            events = overlapping(calls, 3)
        else:
            events = [pairs for call in calls for pairs in call]
        data = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(map(encode_message, events))
    else:
        data = (CAPTURES / f"{name}.ami.txt").read_bytes()
    expected = read_everything(data)
    out, dropped = through_interest(data, chunk)
    if name.endswith("overlapping"):
        # Each call's events as they were; how two calls' interleave may differ (a call
        # ends, or starts, on the next of its events that is read).
        assert _by_call(out) == _by_call(expected)
    else:
        assert out == expected
    if expected:
        assert dropped > 0  # the filter did drop events of every call capture


def _by_call(events: list[ev.CallEvent]) -> dict[str, list[ev.CallEvent]]:
    calls: dict[str, list[ev.CallEvent]] = {}
    for event in events:
        calls.setdefault(event.call_id, []).append(event)
    return calls


def _compared_constants(module: Any, subject: str) -> set[str]:
    """String literals that the module's code compares `...<subject>` with (==, !=, in)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if not any(ast.unparse(side).endswith(subject) for side in sides):
            continue
        for side in sides:
            literals = side.elts if isinstance(side, ast.Tuple | ast.Set | ast.List) else [side]
            found |= {c.value for c in literals if isinstance(c, ast.Constant)}
    return {value for value in found if isinstance(value, str) and value}


def _block(name: str, **headers: str) -> str:
    return "\r\n".join([f"Event: {name}", *(f"{k}: {v}" for k, v in headers.items())])


def test_every_event_and_variable_the_translator_reads_passes_its_interest() -> None:
    # Derived from the code that reads events, so a new branch cannot be forgotten here.
    names = _compared_constants(rec, "name") | _compared_constants(tr, "name")
    variables = _compared_constants(tr, "variable")
    assert {"Hangup", "Cdr", "Newexten"} <= names and "MIXMONITOR_FILENAME" in variables
    translator = CallTranslator()
    interest = translator.interest
    idle = {name for name in names if not interest.admits(name, _block(name))}
    # Only channel setup (Newexten...) matters to nothing but a call whose start is held,
    # and a VarSet is told by its variable.
    assert idle <= tr._SETUP_EVENTS
    held = Interest(interest.names, interest.variables, all_while={"a call"})
    assert {name for name in idle if not held.admits(name, _block(name))} == {"VarSet"}
    # A VarSet: `admits` by its name and the parser by its line tell it alike.
    parser = AmiParser(expect_banner=False)
    for variable in variables:
        for written in (variable, f"_{variable}", f"__{variable}"):
            block = _block("VarSet", Channel="PJSIP/1-0", Variable=written, Value="x")
            for raw in (block, block + "\r\nUniqueid: 1.1"):
                assert interest.admits("VarSet", raw), written
                assert list(parser.stream(_wire(raw), interest)) == [Event.wire(raw)], written
    unread = _block("VarSet", Variable="DIALSTATUS", Value="x")
    assert not interest.admits("VarSet", unread)
    assert list(parser.stream(_wire(unread), interest)) == []
    assert not interest.unread_lines  # a query: what it drops by name, the parser learns
    # The adapter's parser builds what the translator and the device states read.
    adapter = AmiAdapter("ami://crm:x@127.0.0.1:5038", _no_sink)
    assert adapter.interest is not None
    assert adapter.interest.names == interest.names | devices.EVENTS
    assert adapter.interest.all_while is adapter.translator.interest.all_while


async def _no_sink(event: ev.CallEvent) -> None:
    """Nothing is delivered in these tests."""


class _Built:
    """Counts the messages (Event, Response...) built while it is on: sys.setprofile."""

    def __init__(self) -> None:
        self.count = 0
        # Built by their constructor, or as read off the wire.
        self._codes = {Message.__init__.__code__, Message.wire.__func__.__code__}

    def _profile(self, frame: FrameType, what: str, arg: object) -> None:
        if what == "call" and frame.f_code in self._codes:
            self.count += 1

    def __enter__(self) -> _Built:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)


def _wire(*blocks: str) -> bytes:
    return "".join(block + "\r\n\r\n" for block in blocks).encode()


CHANNEL = {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "1.1", "Linkedid": "1.1"}
IGNORED = [
    _block("VarSet", **CHANNEL, Variable="__CRM_DID", Value="74951234567"),
    _block("VarSet", **CHANNEL, Variable="RTPAUDIOQOS", Value="ssrc=1"),
    _block("DeviceStateChange", Device="PJSIP/101", State="INUSE"),
    _block("Newexten", **CHANNEL, Application="Set"),
    _block("Newstate", **CHANNEL),
    _block("RTCPSent", **CHANNEL),
]


def test_a_dropped_event_costs_no_event() -> None:
    translator = CallTranslator()
    parser = AmiParser(expect_banner=False)
    with _Built() as built:
        messages = list(parser.stream(_wire(*IGNORED * 50), translator.interest))
    assert messages == [] and built.count == 0
    assert parser.dropped == len(IGNORED) * 50
    # What the translator reads is built, once each.
    kept = [
        _block("Hangup", **CHANNEL, Cause="16"),
        _block("VarSet", **CHANNEL, Variable="__MIXMONITOR_FILENAME", Value="/r/1.wav"),
    ]
    with _Built() as built:
        messages = list(parser.stream(_wire(*kept, *IGNORED), translator.interest))
    assert [m.name for m in messages] == ["Hangup", "VarSet"] and built.count == 2
    assert [m.raw for m in messages] == kept
    # Responses and the banner are never filtered.
    parser = AmiParser()
    messages = list(
        parser.stream(
            b"Asterisk Call Manager/11.0.0\r\n" + _wire("Response: Success\r\nActionID: 1"),
            translator.interest,
        )
    )
    assert [type(m).__name__ for m in messages] == ["Banner", "Response"]


def _held_names(translator: CallTranslator, *blocks: str) -> tuple[list[str], int]:
    """What the parser builds of one read, fed to the translator as the adapter does."""
    parser = AmiParser(expect_banner=False)
    names = []
    for message in parser.stream(_wire(*blocks), translator.interest):
        assert isinstance(message, Event)
        names.append(message.name)
        translator.feed(message, NOW)
    return names, parser.dropped


def test_while_a_start_is_held_every_channel_event_but_inert_setup_is_built() -> None:
    newchannel = _block(
        "Newchannel", **CHANNEL, Context="from-trunk", Exten="74951234567", CallerIDNum="1"
    )
    # One read: the Newchannel starts a held call, and the events after it in the same read
    # are decided after the translator has seen it. Unread variables, an event of no
    # channel, a state change and a Newexten of a setup application change nothing of an
    # inbound call.
    translator = CallTranslator()
    names, dropped = _held_names(translator, newchannel, *IGNORED)
    assert names == ["Newchannel", "RTCPSent"]
    assert dropped == 5
    # Dropped by `while_held`, not by their name alone: not learnt as unread.
    held = {"Event: Newexten", "Event: Newstate", "Event: DeviceStateChange"}
    assert not translator.interest.unread_lines & held
    # A Newexten running another application releases the start: it is built.
    translator = CallTranslator()
    names, dropped = _held_names(
        translator, newchannel, _block("Newexten", **CHANNEL, Application="NoOp"), IGNORED[3]
    )
    assert names == ["Newchannel"] and dropped == 2 and translator.interest.all_while
    names, _ = _held_names(translator, _block("Newexten", **CHANNEL, Application="Dial"))
    assert names == ["Newexten"] and not translator.interest.all_while
    # A call placed from an extension: its dialplan's every step may tell what it dialled.
    placed = {"Channel": "PJSIP/101-00000001", "Uniqueid": "1.1", "Linkedid": "1.1"}
    names, _ = _held_names(
        CallTranslator(),
        _block("Newchannel", **placed, Context="internal", Exten="s", CallerIDNum="101"),
        _block("Newexten", **placed, Context="internal", Exten="79161234567", Application="Set"),
        _block("Newstate", **placed),
    )
    assert names == ["Newchannel", "Newexten"]


def test_an_event_dropped_by_its_name_is_built_again_while_a_start_is_held() -> None:
    translator = CallTranslator()
    newchannel = _block(
        "Newchannel", **CHANNEL, Context="from-trunk", Exten="74951234567", CallerIDNum="1"
    )
    rtcp = _block("RTCPSent", **CHANNEL)
    # No call held: the parser learns the name is dropped, and drops it by its line.
    names, dropped = _held_names(translator, rtcp, rtcp)
    assert names == [] and dropped == 2
    assert "Event: RTCPSent" in translator.interest.unread_lines
    # Held: the same event may release the start, so it is asked again and built.
    names, dropped = _held_names(translator, newchannel, rtcp)
    assert names == ["Newchannel", "RTCPSent"] and dropped == 0


def test_while_one_start_is_held_the_other_calls_events_are_read_as_when_none_is() -> None:
    translator = CallTranslator()
    started = {"Channel": "PJSIP/trunk-00000002", "Uniqueid": "2.2", "Linkedid": "2.2"}
    names, _ = _held_names(
        translator,
        _block("Newchannel", **started, Context="from-trunk", Exten="1", CallerIDNum="2"),
        _block("Newexten", **started, Application="Dial"),
    )
    assert names == ["Newchannel", "Newexten"] and not translator.interest.all_while
    newchannel = _block(
        "Newchannel", **CHANNEL, Context="from-trunk", Exten="74951234567", CallerIDNum="1"
    )
    # Call 1.1 is held: its own RTCPSent may release it and is built; the started call's,
    # and a Newexten running Dial in it, are not, as if nothing were held.
    names, dropped = _held_names(
        translator,
        newchannel,
        _block("RTCPSent", **started),
        _block("Newexten", **started, Application="Dial"),
        _block("RTCPSent", **CHANNEL),
    )
    assert names == ["Newchannel", "RTCPSent"] and dropped == 2
    assert not translator.interest.all_while  # its RTCPSent released it
