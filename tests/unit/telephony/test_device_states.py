"""A phone counts as busy while it rings or talks, and from the moment routing offered it
a call until the PBX shows it free again after ringing."""

from __future__ import annotations

from support.captures import capture_events

from telephony.ami.devices import DeviceStates


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_ringing_then_talking_phone_is_busy_until_the_call_ends() -> None:
    states = DeviceStates()
    seen = []
    for event in capture_events("incoming-answered"):
        states.feed(event)
        if event.name == "DeviceStateChange" and event.get("Device") == "PJSIP/101":
            seen.append((event.get("State"), "101" in states.busy()))
    assert seen[0] == ("RINGING", True)
    assert ("INUSE", True) in seen
    assert seen[-1] == ("NOT_INUSE", False)


def test_a_phone_just_offered_is_busy_before_it_rings() -> None:
    clock = Clock()
    states = DeviceStates(offer_s=25, clock=clock)
    states.offered("102")
    assert states.busy() == {"102"}
    states.set_state("102", "NOT_INUSE")  # a stale idle from before the ring: still offered
    assert states.busy() == {"102"}
    states.set_state("102", "RINGING")
    states.set_state("102", "NOT_INUSE")  # rang, and is free again
    assert states.busy() == frozenset()


def test_an_offer_the_pbx_never_rang_expires() -> None:
    clock = Clock()
    states = DeviceStates(offer_s=25, clock=clock)
    states.offered("103")
    clock.now = 24.9
    assert states.busy() == {"103"}
    clock.now = 25
    assert states.busy() == frozenset()
