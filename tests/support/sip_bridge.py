"""A SIP bridge pool's call events, a scripted routing policy, and WAV checks."""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telephony import events as ev
from telephony.sip.machine import AskRoute
from telephony.sip.pool import SipPool


class ScriptedRouter:
    """Answers each ask of a call with the next target of `targets` (None: nobody)."""

    def __init__(self, targets: list[str | None]) -> None:
        self.targets = targets
        self.asks: list[AskRoute] = []

    async def __call__(self, ask: AskRoute) -> str | None:
        self.asks.append(ask)
        index = ask.attempt - 1
        return self.targets[index] if index < len(self.targets) else None


@dataclass
class CallLog:
    """The sink: every call event the pool hands over, in order."""

    events: list[ev.CallEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def sink(self, event: ev.CallEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def ended(self, count: int = 1, within: float = 30.0) -> list[ev.CallEnded]:
        """The first `count` ends, once they are all there."""

        def done() -> list[ev.CallEnded]:
            return [e for e in self.events if isinstance(e, ev.CallEnded)]

        async def enough() -> None:
            while len(done()) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), within)
        return done()[:count]

    def of(self, kind: type[Any], call_id: str | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (call_id is None or e.call_id == call_id)
        ]


@dataclass
class Bridge(CallLog):
    pool: SipPool = field(kw_only=True)
    router: ScriptedRouter = field(kw_only=True)
    recordings: Path = field(kw_only=True)
    workdir: Path = field(kw_only=True)

    def address(self, worker: int = 0) -> str:
        return f"127.0.0.1:{self.pool.config.port + worker}"


StartBridge = Callable[..., Awaitable[Bridge]]


def wav_stats(path: Path) -> tuple[float, float]:
    """Duration in seconds and RMS of a 16-bit mono WAV."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        frames = w.readframes(w.getnframes())
        seconds = w.getnframes() / w.getframerate()
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))
    return seconds, rms
