"""Which phones are busy right now: Asterisk's device states plus the offers just made.

A phone is busy while it rings or talks (`DeviceStateChange` RINGING, INUSE, BUSY,
RINGINUSE, ONHOLD). The routing server also counts a phone it has just offered a call to
as busy until the PBX shows it ringing and free again (or `offer_s` passes): between the
FastAGI answer and Asterisk's RINGING there is a moment in which a second call would be
offered to the same phone."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from telephony.ami.frames import Event

BUSY_STATES = frozenset({"RINGING", "INUSE", "BUSY", "RINGINUSE", "ONHOLD"})
# The events `feed` reads (the AMI adapter's parser builds no others for it).
EVENTS = frozenset({"DeviceStateChange"})
# The first lines are the only ones before Device and State: their values are the ones
# `Event.get` gives. Asterisk writes Timestamp (`timestampevents`), then SystemName
# (`systemname` in asterisk.conf), after the privilege.
_LAID_OUT = re.compile(
    r"Event: DeviceStateChange\r\nPrivilege: [^\r]*\r\n(?:Timestamp: [^\r]*\r\n)?"
    r"(?:SystemName: [^\r]*\r\n)?Device: ([^\r]*)\r\nState: ([^\r]*)(?:\r\n|\Z)"
).match


@dataclass(slots=True)
class _Offer:
    at: float
    rang: bool = False  # the PBX showed the phone busy since the offer


class DeviceStates:
    def __init__(self, *, offer_s: float = 25.0, clock: Callable[[], float] = time.monotonic):
        self._offer_s = offer_s
        self._clock = clock
        self._busy: set[str] = set()
        self._offers: dict[str, _Offer] = {}

    def feed(self, event: Event) -> None:
        """A `DeviceStateChange` (others are ignored): `Device: PJSIP/101`, `State: ...`."""
        # One match where Asterisk's layout has them, one in twenty events: a search each
        # costs more.
        laid_out = _LAID_OUT(event.raw)
        if laid_out is not None:
            device, state = laid_out.groups()
        elif event.name in EVENTS:
            device, state = event.get("Device"), event.get("State")
        else:
            return
        _, _, extension = device.partition("/")
        if extension:
            self.set_state(extension, state)

    def set_state(self, extension: str, state: str) -> None:
        offer = self._offers.get(extension)
        if state in BUSY_STATES:
            self._busy.add(extension)
            if offer is not None:
                offer.rang = True
        else:
            self._busy.discard(extension)
            if offer is not None and offer.rang:
                del self._offers[extension]  # it rang and is free again: the offer is over

    def offered(self, extension: str) -> None:
        self._offers[extension] = _Offer(self._clock())

    def busy(self) -> frozenset[str]:
        now = self._clock()
        for extension in [e for e, o in self._offers.items() if now - o.at >= self._offer_s]:
            del self._offers[extension]
        return frozenset(self._busy | self._offers.keys())
