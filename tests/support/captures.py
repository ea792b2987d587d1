"""Real Asterisk captures read as AMI events and replayed through the call translator."""

from __future__ import annotations

from datetime import UTC, datetime

from telephony import events as ev
from telephony.ami.frames import AmiParser, Event, parse_all
from telephony.ami.simulator import CAPTURES, Pairs, prepare
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


def split_at_bridge(name: str, literals: dict[str, str] | None = None) -> tuple[list, list]:
    """A fresh replay of the capture cut just after its call was answered (bridged)."""
    events = prepare(name, literals=literals)
    bridged = next(i for i, p in enumerate(events) if dict(p).get("Event") == "BridgeEnter")
    return events[: bridged + 2], events[bridged + 2 :]


def client_channel(events: list[Pairs]) -> str:
    """The client's leg of an inbound call's replay: the trunk channel, the call's first."""
    return next(dict(p)["Channel"] for p in events if dict(p).get("Event") == "Newchannel")
