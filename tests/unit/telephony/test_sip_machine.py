"""The SIP bridge's call state machine, without pjsua: leg events in, commands and call
events out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telephony import events as ev
from telephony.sip import messages as msg
from telephony.sip.machine import AskRoute, ClickToCall, InboundCall, Output, Phase
from telephony.sip.uri import Party, agent_of, dial_uri, parse_party

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PHONES = "sip:{user}@registrar.test"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def inbound(max_attempts: int = 3) -> tuple[InboundCall, list[Output]]:
    call = InboundCall(
        call_id="c1",
        leg="i1",
        caller="+79161234567",
        caller_name="Ivan",
        did="74951234567",
        at=T0,
        ring_timeout_s=10,
        max_attempts=max_attempts,
        phone_uri=PHONES,
        recordings_dir="/rec",
        sip_call_id="trunk-1@carrier",
    )
    return call, call.start()


def of(outputs: list[Output], kind: type) -> list:
    return [o for o in outputs if isinstance(o, kind)]


def ended(outputs: list[Output]) -> ev.CallEnded:
    (end,) = of(outputs, ev.CallEnded)
    return end


def test_incoming_call_rings_the_caller_and_asks_the_routing_policy() -> None:
    _, out = inbound()
    assert out[0] == msg.Ring(leg="i1")
    started = out[1]
    assert isinstance(started, ev.CallStarted)
    assert (started.caller, started.caller_name, started.did) == (
        "+79161234567",
        "Ivan",
        "74951234567",
    )
    assert started.direction is ev.Direction.INBOUND
    assert out[2] == AskRoute("c1", 1, "+79161234567", "Ivan", "74951234567")


def test_answered_call_is_bridged_recorded_and_ends_with_the_caller_bye() -> None:
    call, _ = inbound()
    out = call.routed(1, "101", at(0.1))
    assert out[0] == msg.Dial(
        leg="c1.1",
        uri="sip:101@registrar.test",
        pair="i1",
        caller="+79161234567",
        caller_name="Ivan",
        reference="trunk-1@carrier",
    )
    assert of(out, ev.CallRinging)[0].agent == "101"
    out = call.on_event(msg.Answered(leg="c1.1", at=0), at(3))
    assert out[:2] == [msg.Answer(leg="i1"), msg.Bridge(a="i1", b="c1.1", recording="c1.wav")]
    assert of(out, ev.CallAnswered)[0].agent == "101"
    assert of(out, ev.RecordingStarted)[0].file == "/rec/c1.wav"
    assert call.on_event(msg.Answered(leg="i1", at=0), at(3.1)) == []  # the caller's ACK
    out = call.on_event(msg.Ended(leg="i1", at=0, code=200), at(10))
    assert out[0] == msg.Hangup(leg="c1.1", code=487)
    end = ended(out)
    assert end.disposition is ev.Disposition.ANSWERED
    assert (end.ring_s, end.talk_s, end.cause) == (3, 7, 16)
    assert (end.agents, end.answered_by) == (("101",), "101")
    assert call.phase is Phase.ENDED
    assert call.on_event(msg.Ended(leg="c1.1", at=0, code=200), at(10.1)) == []


def test_the_phone_hanging_up_ends_the_caller_leg() -> None:
    call, _ = inbound()
    call.routed(1, "sip:102@10.0.0.5:5062", at(0))
    call.on_event(msg.Answered(leg="c1.1", at=0), at(1))
    out = call.on_event(msg.Ended(leg="c1.1", at=0, code=200), at(5))
    assert out[0] == msg.Hangup(leg="i1", code=200)
    assert ended(out).answered_by == "102"  # the user of the profile's SIP URI


def test_ring_timeout_tries_the_next_manager_then_missed_when_nobody_is_left() -> None:
    call, _ = inbound(max_attempts=5)
    call.routed(1, "101", at(0))
    assert call.tick(at(9.9)) == []
    out = call.tick(at(10))
    assert out == [
        msg.Hangup(leg="c1.1", code=487),
        AskRoute("c1", 2, "+79161234567", "Ivan", "74951234567"),
    ]
    assert call.routed(1, "103", at(10.1)) == []  # a late answer to the first ask
    out = call.routed(2, "102", at(10.1))
    assert of(out, msg.Dial)[0].leg == "c1.2"
    assert call.on_event(msg.Ended(leg="c1.1", at=0, code=487), at(10.2)) == []  # the old leg
    call.tick(at(20.1))
    out = call.routed(3, "queue:sales", at(20.2))  # the policy's fallback: no queue here
    assert out[0] == msg.Hangup(leg="i1", code=480)
    end = ended(out)
    assert end.disposition is ev.Disposition.MISSED
    assert (end.ring_s, end.talk_s, end.agents, end.answered_by) == (20.2, 0, (), None)


def test_attempts_are_bounded() -> None:
    call, _ = inbound(max_attempts=2)
    call.routed(1, "101", at(0))
    call.tick(at(10))
    call.routed(2, "102", at(10))
    out = call.tick(at(20))
    assert out[:2] == [msg.Hangup(leg="c1.2", code=487), msg.Hangup(leg="i1", code=480)]
    assert ended(out).disposition is ev.Disposition.MISSED


def test_nobody_on_duty_is_missed_at_once() -> None:
    call, _ = inbound()
    out = call.routed(1, None, at(0.2))
    assert out[0] == msg.Hangup(leg="i1", code=480)
    assert ended(out).disposition is ev.Disposition.MISSED


def test_a_manager_offered_twice_is_not_rung_again() -> None:
    call, _ = inbound()
    call.routed(1, "101", at(0))
    call.tick(at(10))
    out = call.routed(2, "101", at(10))
    assert ended(out).disposition is ev.Disposition.MISSED


@pytest.mark.parametrize("code", [486, 600, 603])
def test_busy_phone_ends_busy_and_the_caller_hears_busy(code: int) -> None:
    call, _ = inbound()
    call.routed(1, "101", at(0))
    out = call.on_event(msg.Ended(leg="c1.1", at=0, code=code), at(1))
    assert out[0] == msg.Hangup(leg="i1", code=486)
    end = ended(out)
    assert (end.disposition, end.cause) == (ev.Disposition.BUSY, 17)


@pytest.mark.parametrize("code", [480, 408, 404, 500])
def test_unreachable_phone_moves_on_to_the_next_manager(code: int) -> None:
    call, _ = inbound()
    call.routed(1, "101", at(0))
    out = call.on_event(msg.Ended(leg="c1.1", at=0, code=code), at(1))
    assert out == [AskRoute("c1", 2, "+79161234567", "Ivan", "74951234567")]


def test_unreachable_last_manager_is_missed_with_480() -> None:
    call, _ = inbound(max_attempts=1)
    call.routed(1, "101", at(0))
    out = call.on_event(msg.Ended(leg="c1.1", at=0, code=408), at(1))
    assert out[0] == msg.Hangup(leg="i1", code=480)
    assert ended(out).disposition is ev.Disposition.MISSED


def test_caller_cancel_while_ringing_is_abandoned_and_cancels_the_phone() -> None:
    call, _ = inbound()
    call.routed(1, "101", at(0))
    out = call.on_event(msg.Ended(leg="i1", at=0, code=487), at(4))
    assert out[0] == msg.Hangup(leg="c1.1", code=487)
    assert not of(out, msg.Hangup)[1:]  # nothing more to send the caller
    end = ended(out)
    assert (end.disposition, end.ring_s) == (ev.Disposition.ABANDONED, 4)


def test_caller_gone_while_routing_is_abandoned_and_the_late_route_ignored() -> None:
    call, _ = inbound()
    out = call.on_event(msg.Ended(leg="i1", at=0, code=487), at(0.3))
    assert out == [ended(out)]
    assert call.routed(1, "101", at(0.5)) == []


def test_a_dead_worker_ends_the_call_failed_without_commands() -> None:
    call, _ = inbound()
    call.routed(1, "101", at(0))
    call.on_event(msg.Answered(leg="c1.1", at=0), at(1))
    out = call.abort(at(3))
    assert of(out, msg.Hangup) == []
    end = ended(out)
    assert (end.disposition, end.talk_s) == (ev.Disposition.FAILED, 2)
    assert call.abort(at(4)) == []


def test_the_crm_hanging_up_a_bridged_call_ends_both_legs() -> None:
    call, _ = inbound()
    call.routed(1, "101", at(0))
    call.on_event(msg.Answered(leg="c1.1", at=0), at(1))
    out = call.hangup(at(4))
    assert out[:2] == [msg.Hangup(leg="c1.1", code=487), msg.Hangup(leg="i1", code=200)]
    assert ended(out).disposition is ev.Disposition.ANSWERED
    assert call.hangup(at(5)) == []


def test_the_crm_hanging_up_a_ringing_call_gives_the_caller_480() -> None:
    call, _ = inbound()
    call.routed(1, "101", at(0))
    out = call.hangup(at(2))
    assert out[:2] == [msg.Hangup(leg="c1.1", code=487), msg.Hangup(leg="i1", code=480)]
    assert ended(out).disposition is ev.Disposition.MISSED


def test_a_bad_routing_target_is_skipped() -> None:
    call, _ = inbound()
    out = call.routed(1, "10 1; rm", at(0))
    assert out == [AskRoute("c1", 2, "+79161234567", "Ivan", "74951234567")]


def click() -> tuple[ClickToCall, list[Output]]:
    call = ClickToCall(
        call_id="c2",
        crm_call_id="crm-1",
        agent="101",
        agent_uri="sip:101@registrar.test",
        number="79161234567",
        client_uri="sip:79161234567@trunk.test",
        at=T0,
        agent_timeout_s=20,
        client_timeout_s=30,
        recordings_dir="/rec",
    )
    return call, call.start()


def test_click_to_call_rings_the_manager_then_the_client_and_bridges() -> None:
    call, out = click()
    assert out == [msg.Dial(leg="c2.agent", uri="sip:101@registrar.test", caller="79161234567")]
    out = call.on_event(msg.Answered(leg="c2.agent", at=0), at(2))
    assert out[0] == msg.Dial(leg="c2.client", uri="sip:79161234567@trunk.test", pair="c2.agent")
    started = of(out, ev.CallStarted)[0]
    assert (started.direction, started.caller, started.callee, started.crm_call_id) == (
        ev.Direction.OUTBOUND,
        "101",
        "79161234567",
        "crm-1",
    )
    assert of(out, ev.CallRinging)[0].agent == "101"
    out = call.on_event(msg.Answered(leg="c2.client", at=0), at(5))
    assert out[0] == msg.Bridge(a="c2.agent", b="c2.client", recording="c2.wav")
    assert of(out, ev.CallAnswered)[0].agent is None
    out = call.on_event(msg.Ended(leg="c2.client", at=0, code=200), at(9))
    assert out[0] == msg.Hangup(leg="c2.agent", code=487)
    end = ended(out)
    assert (end.disposition, end.ring_s, end.talk_s, end.agents) == (
        ev.Disposition.ANSWERED,
        5,
        4,
        ("101",),
    )
    assert end.crm_call_id == "crm-1"


@pytest.mark.parametrize(
    ("code", "reason"),
    [(486, "agent_busy"), (480, "extension_offline"), (408, "agent_no_answer"), (500, "failed")],
)
def test_click_to_call_manager_phone_failing_is_one_originate_failed(
    code: int, reason: str
) -> None:
    call, _ = click()
    out = call.on_event(msg.Ended(leg="c2.agent", at=0, code=code), at(1))
    assert [type(o) for o in out] == [ev.OriginateFailed]
    assert out[0].reason == reason  # type: ignore[union-attr]


def test_click_to_call_manager_not_answering_in_time() -> None:
    call, _ = click()
    out = call.tick(at(20))
    assert out[0] == msg.Hangup(leg="c2.agent", code=487)
    assert of(out, ev.OriginateFailed)[0].reason == "agent_no_answer"


@pytest.mark.parametrize(
    ("code", "disposition"),
    [(486, ev.Disposition.BUSY), (480, ev.Disposition.MISSED), (503, ev.Disposition.FAILED)],
)
def test_click_to_call_client_not_answering(code: int, disposition: ev.Disposition) -> None:
    call, _ = click()
    call.on_event(msg.Answered(leg="c2.agent", at=0), at(1))
    out = call.on_event(msg.Ended(leg="c2.client", at=0, code=code), at(4))
    assert out[0] == msg.Hangup(leg="c2.agent", code=487)
    assert ended(out).disposition is disposition


def test_click_to_call_manager_hanging_up_before_the_client_answers() -> None:
    call, _ = click()
    call.on_event(msg.Answered(leg="c2.agent", at=0), at(1))
    out = call.on_event(msg.Ended(leg="c2.agent", at=0, code=200), at(3))
    assert out[0] == msg.Hangup(leg="c2.client", code=487)
    assert ended(out).disposition is ev.Disposition.ABANDONED


@pytest.mark.parametrize(
    ("value", "party"),
    [
        (
            '"Ivan Petrov" <sip:+79161234567@10.0.0.1:5060>;tag=abc',
            Party("+79161234567", "Ivan Petrov"),
        ),
        ("<sip:101@pbx;transport=tcp>", Party("101", None)),
        ("sip:74951234567@trunk", Party("74951234567", None)),
        ('"Anonymous" <sip:anonymous@anonymous.invalid>', Party(None, None)),
        ('"Ива\\"н" <sip:%2B7916@h>', Party("+7916", 'Ива"н')),
        ("Bob <tel:+7495>", Party("+7495", "Bob")),
        ("garbage", Party(None, None)),
    ],
)
def test_parse_party(value: str, party: Party) -> None:
    assert parse_party(value) == party


def test_dial_targets() -> None:
    assert dial_uri("101", PHONES) == "sip:101@registrar.test"
    assert dial_uri("sip:101@10.0.0.2:5062", PHONES) == "sip:101@10.0.0.2:5062"
    assert agent_of("sip:101@10.0.0.2:5062") == "101"
    assert agent_of("101") == "101"
    with pytest.raises(ValueError, match="not an extension"):
        dial_uri("101>;evil", PHONES)


def test_messages_round_trip_and_garbage_is_refused() -> None:
    for message in (
        msg.Incoming(leg="i1", at=1.5, caller=None, caller_name="x", did="1", sip_call_id="a@b"),
        msg.Dial(leg="c.1", uri="sip:1@h", pair="i1"),
        msg.Ended(leg="i1", at=2.0, code=487, reason="Request Terminated"),
    ):
        assert msg.decode(msg.encode(message)) == message
    for line in (b"{", b'{"type": "Nope"}', b'{"type": "Ring"}', b"[]"):
        with pytest.raises(msg.BadMessage):
            msg.decode(line)
