"""A channel snapshot laid out as Asterisk writes it is read by one match; any other
layout by the header split. Both must give the same records."""

from __future__ import annotations

import pytest

from telephony.ami import records as rec
from telephony.ami.frames import Event, encode_message, parse_all
from telephony.ami.simulator import CALL_SCENARIOS, CAPTURES, prepare

ALL_CAPTURES = sorted(path.name.removesuffix(".ami.txt") for path in CAPTURES.glob("*.ami.txt"))


FRESH = "every-call-scenario-fresh"  # every simulator scenario, replayed with new ids


def _events(name: str) -> list[Event]:
    """A capture's events, or (FRESH) every scenario as the simulator replays it."""
    if name == FRESH:
        data = b"".join(encode_message(p) for n in CALL_SCENARIOS for p in prepare(n))
        return [m for m in parse_all(data, expect_banner=False) if isinstance(m, Event)]
    data = (CAPTURES / f"{name}.ami.txt").read_bytes()
    return [m for m in parse_all(data) if isinstance(m, Event)]


def _reordered(event: Event) -> Event:
    """The same headers, the event's name first and the rest in reverse: no layout."""
    pairs = list(event.items())
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for key, value in [pairs[0], *reversed(pairs[1:])]:
        if key in headers:
            repeated.setdefault(key, []).append(value)
        else:
            headers[key] = value
    return Event(headers, repeated)


@pytest.mark.parametrize("name", [*ALL_CAPTURES, FRESH])
def test_a_laid_out_snapshot_gives_the_record_the_header_split_gives(name: str) -> None:
    events = _events(name)
    laid_out = 0
    for event in events:
        wire = Event(raw=event.raw)
        for prefix in ("", "Dest"):
            assert rec.leg(wire, prefix) == rec.leg(_reordered(event), prefix)
            laid_out += rec._laid_out(wire, prefix) is not None
            assert rec._laid_out(_reordered(event), prefix) is None
        assert rec.decode(wire) == rec.decode(_reordered(event))
    channels = sum(1 for e in events if e.get("Uniqueid") and e.get("Privilege"))
    assert laid_out >= channels // 2  # most are read by the match


def _variants(raw: str) -> list[str]:
    """The event as sent, stamped as `timestampevents = yes` stamps it, and with lines
    after its own that repeat (or add) the headers a record reads, a Timestamp among them."""
    head, _, rest = raw.partition("\r\n")
    privilege, _, rest = rest.partition("\r\n")
    stamped = f"{head}\r\n{privilege}\r\nTimestamp: 1795386675.5\r\n{rest}"
    extra = [
        f"{key}: x"
        for key in ("Cause", "Variable", "Application", "DialStatus", "DialString", "Uniqueid")
    ]
    return [raw, stamped, "\r\n".join([raw, *extra]), f"{raw}\r\nTimestamp: 1795386677.0"]


@pytest.mark.parametrize("name", [*ALL_CAPTURES, FRESH])
def test_an_event_read_by_its_layout_gives_the_record_the_header_search_gives(
    name: str,
) -> None:
    events = _events(name)
    by_layout = 0
    for event in events:
        for raw in _variants(event.raw):
            wire = Event.wire(raw)
            assert rec.decode(wire) == rec._searched(wire, wire.name), raw
            layout = rec._LAYOUTS.get(wire.name)
            by_layout += layout is not None and layout[0](raw) is not None
    laid_out = sum(1 for e in events if e.name in rec._LAYOUTS and e.get("Privilege"))
    assert by_layout >= laid_out  # as sent and stamped: most of them by the layout


SNAPSHOT = [
    ("Channel", "PJSIP/trunk-00000001"),
    ("ChannelState", "4"),
    ("ChannelStateDesc", "Ring"),
    ("CallerIDNum", "+79161234567"),
    ("CallerIDName", "<unknown>"),
    ("ConnectedLineNum", "<unknown>"),
    ("ConnectedLineName", "<unknown>"),
    ("Language", "en"),
    ("AccountCode", ""),
    ("Context", "from-trunk"),
    ("Exten", "74951234567"),
    ("Priority", "1"),
    ("Uniqueid", "1795386673.0"),
    ("Linkedid", "1795386673.0"),
]


def _wire(pairs: list[tuple[str, str]]) -> Event:
    return Event(raw=encode_message(pairs).decode().removesuffix("\r\n\r\n"))


def test_other_layouts_are_read_by_name() -> None:
    head = [("Event", "Hangup"), ("Privilege", "call,all")]
    tail = [("Cause", "16"), ("Cause-txt", "Normal Clearing")]
    plain = rec.decode(_wire(head + SNAPSHOT + tail))
    assert isinstance(plain, rec.Hangup) and plain.cause == 16
    assert plain.leg.caller_num == "+79161234567" and plain.leg.caller_name is None
    stamped = rec.decode(_wire([*head, ("Timestamp", "1795386675.5"), *SNAPSHOT, *tail]))
    assert stamped is not None and stamped.stamp is not None and stamped.leg == plain.leg
    # A line missing (an older Asterisk), a header before the snapshot, another order.
    for pairs in (
        head + [p for p in SNAPSHOT if p[0] != "Language"] + tail,
        [*head, ("SequenceNumber", "7"), *SNAPSHOT, *tail],
        head + SNAPSHOT[::-1] + tail,
    ):
        event = _wire(pairs)
        assert rec._laid_out(event, "") is None
        assert rec.decode(event) == plain
    # A header repeated before the snapshot: the first one counts, as `headers.get` says.
    event = _wire([*head, ("Linkedid", "1795386600.9"), *SNAPSHOT, *tail])
    record = rec.decode(event)
    assert record is not None and isinstance(record, rec.Hangup)
    assert record.leg.linkedid == "1795386600.9"
    # No Linkedid: no record of a channel event, and a snapshot row's call is its own.
    unlinked = [(k, "" if k == "Linkedid" else v) for k, v in SNAPSHOT]
    assert rec.decode(_wire(head + unlinked + tail)) is None
    shown = rec.leg(_wire(head + unlinked))
    assert shown is not None and shown.linkedid == shown.uniqueid == "1795386673.0"
