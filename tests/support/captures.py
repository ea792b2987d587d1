"""Real Asterisk captures read as AMI events and replayed through the call translator."""

from __future__ import annotations

from datetime import UTC, datetime

from telephony import events as ev
from telephony.ami.frames import AmiParser, Event, parse_all
from telephony.ami.simulator import CAPTURES
from telephony.ami.translator import CallTranslator

NOW = datetime(2026, 11, 22, 22, 40, tzinfo=UTC)
MONITOR = "/var/spool/asterisk/monitor/"


def capture_events(name: str, chunk: int | None = None) -> list[Event]:
    data = (CAPTURES / f"{name}.ami.txt").read_bytes()
    if chunk is None:
        messages = parse_all(data)
    else:
        parser = AmiParser()
        messages = [m for i in range(0, len(data), chunk) for m in parser.feed(data[i : i + chunk])]
    return [m for m in messages if isinstance(m, Event)]


def translate(events: list[Event], translator: CallTranslator | None = None) -> list[ev.CallEvent]:
    """Every event as received at the same instant: times come from the PBX's figures."""
    translator = translator or CallTranslator()
    out: list[ev.CallEvent] = []
    for event in events:
        out.extend(translator.feed(event, NOW))
    return out
