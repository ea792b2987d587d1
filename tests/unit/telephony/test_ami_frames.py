"""The AMI parser on the real Asterisk bytes: whole, byte by byte, and with garbage."""

from __future__ import annotations

import pytest

from telephony.ami.frames import (
    Action,
    AmiParser,
    Banner,
    Event,
    Malformed,
    Response,
    encode_action,
    encode_message,
    parse_all,
)
from telephony.ami.simulator import CAPTURES

ALL_CAPTURES = sorted(p.name.removesuffix(".ami.txt") for p in CAPTURES.glob("*.ami.txt"))


def _feed_in_chunks(data: bytes, size: int) -> list[object]:
    parser = AmiParser()
    out: list[object] = []
    for i in range(0, len(data), size):
        out.extend(parser.feed(data[i : i + size]))
    assert parser.pending == 0
    return out


def test_every_capture_is_in_the_package() -> None:
    assert len(ALL_CAPTURES) == 19  # set 1 (11) and set 2 (8)


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_capture_parses_the_same_whole_and_byte_by_byte(name: str) -> None:
    data = (CAPTURES / f"{name}.ami.txt").read_bytes()
    whole = parse_all(data)
    assert whole[0] == Banner("Asterisk Call Manager/11.0.0")
    assert not [m for m in whole if isinstance(m, Malformed)]
    # Every message is a block: as many as blank lines (the banner has none).
    assert len(whole) - 1 == data.count(b"\r\n\r\n")
    assert _feed_in_chunks(data, 1) == whole
    assert _feed_in_chunks(data, 7) == whole


def test_responses_events_and_headers_are_typed() -> None:
    data = (CAPTURES / "incoming-answered.ami.txt").read_bytes()
    messages = parse_all(data)
    login = messages[1]
    assert isinstance(login, Response)
    assert (login.status, login.action_id, login.message, login.ok) == (
        "Success",
        "login-1",
        "Authentication accepted",
        True,
    )
    newchannel = next(m for m in messages if isinstance(m, Event) and m.name == "Newchannel")
    assert newchannel["Channel"] == "PJSIP/trunk-00000000"
    assert newchannel.get("AccountCode") == ""  # "AccountCode: " with an empty value
    assert newchannel.get("Linkedid") == "1795386673.0"
    assert isinstance(messages[-1], Response) and messages[-1].status == "Goodbye"


def test_repeated_keys_are_all_kept() -> None:
    data = (
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Response: Success\r\nActionID: cmd-1\r\nMessage: Command output follows\r\n"
        b"Output: line one\r\nOutput: line two\r\nOutput: \r\n\r\n"
        b"Event: CoreShowChannel\r\nChanVariable: CRM_CALL_ID=crm-1\r\n"
        b"ChanVariable: ROUTE_TO=102\r\n\r\n"
    )
    response, event = parse_all(data)[1:]
    assert isinstance(response, Response) and isinstance(event, Event)
    assert response.get_all("Output") == ["line one", "line two", ""]
    assert response.get("Output") == "line one"
    assert event.variables() == {"CRM_CALL_ID": "crm-1", "ROUTE_TO": "102"}
    assert list(event.items())[1:] == [
        ("ChanVariable", "CRM_CALL_ID=crm-1"),
        ("ChanVariable", "ROUTE_TO=102"),
    ]


def test_core_show_version_output_header() -> None:
    messages = parse_all((CAPTURES / "core-show-version.ami.txt").read_bytes())
    command = next(m for m in messages if isinstance(m, Response) and m.action_id != "login-1")
    assert command.get_all("Output")[0].startswith("Asterisk 22.10.1")


def test_cyrillic_name_split_across_reads_survives() -> None:
    name = "Иван Петрович Сидоров"
    block = encode_message(
        [("Event", "Newchannel"), ("CallerIDName", name), ("Uniqueid", "1795386673.0")]
    )
    data = b"Asterisk Call Manager/11.0.0\r\n" + block
    # Cut inside a two-byte character: the first byte of "И" ends the first read.
    cut = data.index(name.encode()) + 1
    parser = AmiParser()
    first = parser.feed(data[:cut])
    second = parser.feed(data[cut:])
    assert first == [Banner("Asterisk Call Manager/11.0.0")]
    assert isinstance(second[0], Event) and second[0]["CallerIDName"] == name
    (event,) = [m for m in _feed_in_chunks(data, 1) if isinstance(m, Event)]
    assert event["CallerIDName"] == name


def test_garbage_is_reported_and_the_stream_goes_on() -> None:
    good = encode_message([("Event", "Hangup"), ("Uniqueid", "1.1"), ("Cause", "16")])
    data = (
        b"Asterisk Call Manager/11.0.0\r\n"
        + b"\x00\xff\xfenot ami at all\r\n\r\n"  # a whole junk block
        + good
        + b"junk glued before\r\n"  # junk lines then a real message in one block
        + good
        + b"Event: Newstate\r\nno colon line\r\nChannel: PJSIP/101-1\r\n\r\n"
        + b"\r\n\r\n"  # stray blank lines
        + good
    )
    messages = parse_all(data)
    kinds = [type(m).__name__ for m in messages]
    assert kinds == ["Banner", "Malformed", "Event", "Malformed", "Event", "Event", "Event"]
    newstate = messages[5]
    assert isinstance(newstate, Event) and dict(newstate.items()) == {
        "Event": "Newstate",
        "Channel": "PJSIP/101-1",
    }
    assert _feed_in_chunks(data, 1) == messages


def test_a_block_that_never_ends_is_dropped_not_buffered_forever() -> None:
    parser = AmiParser()
    parser.feed(b"Asterisk Call Manager/11.0.0\r\n")
    out = parser.feed(b"Event: Flood\r\nX: " + b"a" * (1 << 20) + b"\r\n")
    assert len(out) == 1 and isinstance(out[0], Malformed)
    assert parser.pending == 0
    assert parser.feed(encode_message([("Event", "Ping")])) == [Event({"Event": "Ping"})]
    assert parser.malformed == 1


def test_a_stream_without_banner_starts_with_a_message() -> None:
    assert parse_all(encode_message([("Response", "Success")])) == [
        Response({"Response": "Success"})
    ]


def test_actions_round_trip_and_refuse_header_injection() -> None:
    wire = encode_action("Originate", [("ActionID", "a-1"), ("Variable", "CRM_CALL_ID=c-1")])
    assert wire == b"Action: Originate\r\nActionID: a-1\r\nVariable: CRM_CALL_ID=c-1\r\n\r\n"
    (action,) = AmiParser(expect_banner=False).feed(wire)
    assert isinstance(action, Action) and action.name == "Originate"
    with pytest.raises(ValueError, match="single line"):
        encode_action("Originate", [("Exten", "123\r\nAction: Hangup")])


def test_the_capture_sent_actions_parse_as_actions() -> None:
    sent = (CAPTURES / "click-to-call.actions.txt").read_bytes()
    actions = AmiParser(expect_banner=False).feed(sent)
    assert [a.name for a in actions if isinstance(a, Action)] == ["Login", "Originate", "Logoff"]
