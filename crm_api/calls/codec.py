"""Call events to and from the JSON that travels through the durable event stream."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from typing import Any

from telephony import events as ev

_TYPES: dict[str, type[ev.CallEvent]] = {
    cls.__name__: cls
    for cls in (
        ev.CallStarted,
        ev.CallRinging,
        ev.CallAnswered,
        ev.CallDialling,
        ev.CallTransferred,
        ev.RecordingStarted,
        ev.CallEnded,
        ev.CallRouted,
        ev.OriginateFailed,
    )
}


# When the PBX side appended the event (epoch seconds): the pop's latency starts there.
SENT_AT = "sent_at"


class UnknownEvent(ValueError):
    pass


def encode(event: ev.CallEvent, *, pbx: str) -> dict[str, Any]:
    """`pbx`: the name of the PBX whose process sends the event."""
    data: dict[str, Any] = {"type": type(event).__name__, SENT_AT: time.time()}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        data[f.name] = value
    data["pbx"] = pbx
    return data


def decode(data: dict[str, Any]) -> ev.CallEvent:
    cls = _TYPES.get(str(data.get("type")))
    if cls is None:
        raise UnknownEvent(f"unknown call event type {data.get('type')!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "at":
            value = datetime.fromisoformat(value)
        elif f.name == "direction":
            value = ev.Direction(value)
        elif f.name == "disposition":
            value = ev.Disposition(value)
        elif f.name == "unanswered" and value is not None:
            value = ev.Unanswered(value)
        elif f.name == "agents":
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
