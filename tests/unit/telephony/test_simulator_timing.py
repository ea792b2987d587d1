"""`callcard pbx-sim` plays calls the way people make them: the pauses fall where a phone
rings, two people talk or a caller waits in a queue, and the agents given ring in turn."""

from __future__ import annotations

from telephony.ami.simulator import HUMAN, Timing, _Moment, _pause_before, agent_literals, prepare

STEADY = Timing(ring=(5.0, 5.0), talk=(30.0, 30.0), hold=(10.0, 10.0))


def pauses(name: str, timing: Timing = STEADY, **literals: str) -> list[tuple[str, float]]:
    moments: dict[str, _Moment] = {}
    events = prepare(name, literals=literals or None)
    return [(dict(pairs)["Event"], _pause_before(timing, pairs, moments)) for pairs in events]


def test_an_answered_call_rings_for_seconds_then_talks_for_tens_of_seconds() -> None:
    made = [(name, pause) for name, pause in pauses("incoming-answered") if pause]
    assert made == [("DialEnd", 5.0), ("HangupRequest", 30.0)]


def test_a_caller_who_cancels_is_heard_ringing_first() -> None:
    made = [(name, pause) for name, pause in pauses("incoming-cancel-while-ringing") if pause]
    assert made == [("HangupRequest", 5.0)]


def test_queue_callers_nobody_takes_wait_before_the_timeout() -> None:
    made = pauses("queue-timeout-unrung")
    assert [pause for name, pause in made if name == "QueueCallerAbandon"] == [10.0, 10.0]


def test_a_busy_phone_does_not_ring() -> None:
    assert not any(pause for name, pause in pauses("incoming-busy") if name == "DialEnd")


def test_human_timing_rings_for_seconds_and_talks_for_tens_of_seconds() -> None:
    assert 2 <= HUMAN.ring[0] < HUMAN.ring[1] <= 15
    assert 10 <= HUMAN.talk[0] < HUMAN.talk[1] <= 90


def test_agents_ring_in_turn_the_first_phone_of_each_call() -> None:
    agents = ["104", "101", "102", "103"]
    assert agent_literals(agents, 0) == {"101": "104", "102": "101", "103": "102"}
    assert agent_literals(agents, 1) == {"101": "101", "102": "102", "103": "103"}
    assert agent_literals(agents, 3)["101"] == "103"
    assert agent_literals([], 5) == {}


def test_a_replay_rings_the_demo_operator_and_swaps_phones_at_once() -> None:
    literals = agent_literals(["104", "101", "102", "103"], 0)
    events = [dict(pairs) for pairs in prepare("queue-call", literals=literals)]
    rung = [e["DestChannel"].split("-")[0] for e in events if e["Event"] == "DialBegin"]
    assert rung == ["PJSIP/104", "PJSIP/101", "PJSIP/102"]  # 101->104, 102->101, 103->102
    callers = {e.get("CallerIDNum") for e in events if e["Event"] == "Newchannel"}
    assert "84951112233" in callers  # a number is not a phone: it stays as it is
