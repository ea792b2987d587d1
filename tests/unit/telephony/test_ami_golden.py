"""The adapter's whole read path (bytes -> call events, device states, counters) on every
real capture, against what it gave when `ami_golden.json` was written: any change to the
parser, the records or the translator that changes one call event, or a count, fails here.

Regenerate only for an intended change of output:
`PYTHONPATH=.:tests python tests/unit/telephony/test_ami_golden.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.captures import NOW

from telephony.ami import panoramisk_link
from telephony.ami.adapter import AmiAdapter
from telephony.ami.simulator import CAPTURES

GOLDEN = Path(__file__).with_name("ami_golden.json")
ALL_CAPTURES = sorted(p.name.removesuffix(".ami.txt") for p in CAPTURES.glob("*.ami.txt"))
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CHUNKS = (1 << 30, 997, 1)


def _streams() -> dict[str, bytes]:
    streams = {name: (CAPTURES / f"{name}.ami.txt").read_bytes() for name in ALL_CAPTURES}
    # Every capture back to back on one link: calls overlap the previous one's tail.
    bodies = [data.removeprefix(BANNER) for data in streams.values()]
    streams["all-back-to-back"] = BANNER + b"".join(bodies)
    # The same with what a broken PBX or proxy adds: stray blank lines, lines before a
    # message, a block without any message header, a lone CR or LF in a value, a header
    # without its space, an empty Variable and a read variable's name as a value.
    garbled = []
    for i, body in enumerate(bodies):
        for j, block in enumerate(body.split(b"\r\n\r\n")):
            k = (i * 7 + j) % 11
            if k == 0:
                block = b"garbage line\r\n" + block
            elif k == 1:
                block = b"\r\n" + block
            elif k == 2:
                block = block.replace(b"\r\nContext: ", b"\r\nContext:", 1)
            elif k == 3:
                block = block.replace(b"\r\nValue: ", b"\r\nValue: a\rb", 1)
            elif k == 4:
                block = block.replace(b"\r\nVariable: ", b"\r\nVariable: \r\nX: ", 1)
            elif k == 5:
                block = block.replace(b"\r\nExten: ", b"\r\nExten: \n", 1)
            elif k == 6:
                block += b"\r\n\r\nno header at all\r\nFoo: bar"
            elif k == 7:
                block = block.replace(b"\r\nValue: ", b"\r\nValue: MIXMONITOR_FILENAME", 1)
            garbled.append(block)
    streams["all-garbled"] = BANNER + b"\r\n\r\n".join(garbled)
    return streams


class _Transport(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


class _Clock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW


async def _no_sink(_event: object) -> None:
    """Nothing is delivered: the events are read off the adapter's queue."""


def _read(data: bytes, chunk: int) -> dict[str, Any]:
    adapter = AmiAdapter("ami://crm:x@127.0.0.1:5038", _no_sink)
    protocol = panoramisk_link.AmiLinkProtocol(adapter)
    protocol.connection_made(_Transport())
    for at in range(0, len(data), chunk):
        protocol.data_received(data[at : at + chunk])
    queue = adapter._queue
    events = [repr(queue.get_nowait()) for _ in range(queue.qsize())]
    status = adapter.status
    return {
        "events": events,
        "counts": [status.events, status.malformed, protocol.parser.dropped, status.live_calls],
        "busy": sorted(adapter.devices.busy()),
        "live": sorted(adapter.translator.live_calls),
        "version": status.version,
    }


def _all(chunk: int) -> dict[str, dict[str, Any]]:
    return {name: _read(data, chunk) for name, data in _streams().items()}


def _digest(result: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()


def _golden() -> dict[str, Any]:
    """Whole reads in full; reads in chunks by digest (with garbage, a chunk boundary
    inside a run of blank lines changes how a block is cut, and so the counts)."""
    whole = _all(CHUNKS[0])
    chunked = {
        str(chunk): {name: _digest(got) for name, got in _all(chunk).items()}
        for chunk in CHUNKS[1:]
    }
    return {"whole": whole, "chunked": chunked}


@pytest.fixture(autouse=True)
def _pbx_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every read at the same instant: times come from the PBX's figures and NOW.
    monkeypatch.setattr(panoramisk_link, "datetime", _Clock)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_every_capture_reads_as_it_did(chunk: int) -> None:
    golden = json.loads(GOLDEN.read_text())
    whole = golden["whole"]
    assert set(whole) == set(_streams())
    for name, got in _all(chunk).items():
        if chunk == CHUNKS[0]:
            assert got == whole[name], name
        else:
            # On a difference, the whole read's result tells what changed.
            assert _digest(got) == golden["chunked"][str(chunk)][name], (name, got)


if __name__ == "__main__":
    panoramisk_link.datetime = _Clock  # type: ignore[misc]
    GOLDEN.write_text(json.dumps(_golden(), indent=1, ensure_ascii=False) + "\n")
