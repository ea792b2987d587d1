"""A phone counts as busy while it rings or talks, and from the moment routing offered it
a call until the PBX shows it free again after ringing."""

from __future__ import annotations

from support.captures import capture_events

from telephony.ami import devices
from telephony.ami.devices import DeviceStates
from telephony.ami.frames import Event


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


def test_a_device_state_is_read_alike_laid_out_or_not() -> None:
    wire = "Event: DeviceStateChange\r\nPrivilege: call,all\r\nDevice: PJSIP/101\r\nState: INUSE"
    stamped = wire.replace("all\r\n", "all\r\nTimestamp: 1795386675.5\r\n")
    # `systemname` set in asterisk.conf: Asterisk names itself in every event.
    named = wire.replace("all\r\n", "all\r\nSystemName: pbx1\r\n")
    both = stamped.replace("5.5\r\n", "5.5\r\nSystemName: pbx1\r\n")
    reordered = Event({"Event": "DeviceStateChange", "State": "INUSE", "Device": "PJSIP/101"})
    for event in (*(Event.wire(raw) for raw in (wire, stamped, named, both)), reordered):
        assert devices._LAID_OUT(event.raw) is not None or event is reordered
        states = DeviceStates()
        states.feed(event)
        assert states.busy() == {"101"}
    # Not a device event: nothing is read, whatever its lines.
    states = DeviceStates()
    states.feed(Event.wire(wire.replace("DeviceStateChange", "ExtensionStatus")))
    assert states.busy() == frozenset()
