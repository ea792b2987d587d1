"""Calls in Asterisk's own wire format, made from the real captures: each one replayed
with fresh ids (the simulator's `prepare`) and its own caller, for bursts of many calls."""

from __future__ import annotations

from telephony.ami.simulator import Pairs, linkedid_of, prepare

# Capture -> the caller's number as the capture has it (raw; normalised by the dialplan),
# and, for a capture of several calls, the one call kept.
CALLERS: dict[str, tuple[str, str]] = {
    "incoming-answered": ("89161234567", "+79161234567"),
    "incoming-busy": ("89035556677", "+79035556677"),
    "incoming-missed": ("89167654321", "+79167654321"),
    "queue-timeout-unrung": ("89265550102", "+79265550102"),  # one queue caller of two
    "incoming-cancel-while-ringing": ("89265550101", "+79265550101"),
}
# What a 30-call burst mixes: answered, busy, no answer, queue timeout.
MIX = ("incoming-answered", "incoming-busy", "incoming-missed", "queue-timeout-unrung")


def one_call(capture: str, caller: str, **more: str) -> list[Pairs]:
    """The capture's call from `caller` (E.164), alone: other calls of the capture and
    events of no call (device and queue-member states) are left out."""
    raw, e164 = CALLERS[capture]
    literals = {raw: "8" + caller.removeprefix("+7"), e164: caller, **more}
    events = prepare(capture, literals=literals)
    first = next(
        dict(p)
        for p in events
        if dict(p).get("Event") == "Newchannel"
        and dict(p).get("CallerIDNum") in (caller, literals[raw])
    )
    linkedid = first["Linkedid"]
    return [p for p in events if linkedid_of(p) == linkedid or _cdr_of(p, linkedid)]


def _cdr_of(pairs: Pairs, linkedid: str) -> bool:
    fields = dict(pairs)
    return fields.get("Event") == "Cdr" and fields.get("UniqueID") == linkedid


def burst(n: int = 30) -> list[tuple[str, str, list[Pairs]]]:
    """`n` calls cycling through MIX, each from its own number: (capture, caller, events)."""
    calls = []
    for i in range(n):
        capture = MIX[i % len(MIX)]
        caller = f"+7926777{i:04d}"
        calls.append((capture, caller, one_call(capture, caller)))
    return calls


def anonymous_call() -> list[Pairs]:
    """The no-answer capture from a caller who withheld the number (`anonymous`)."""
    raw, e164 = CALLERS["incoming-missed"]
    return prepare("incoming-missed", literals={raw: "anonymous", e164: "anonymous"})
