"""AMI ingestion rate on one core: the adapter's listener against a bare
`readuntil(b"\\r\\n\\r\\n")` splitter, on the same bytes in the same run.

The bytes are real call scenarios (fresh ids per replay) streamed over loopback TCP by
a separate process, so the measured loop owns its core: the calls back to back, then
overlapping as at 50 calls/s (about 90 at once). Three readers on each:
- bare: `readuntil` per message, nothing else (the floor any reader pays);
- parser: the adapter's read loop body (reads of 64 KiB through `AmiParser`);
- adapter: the whole `AmiAdapter` (login, resync, parse, translate, dispatch to a sink).
Target: parser and adapter >= 50% of bare. Prints events/s, this process's CPU per event
(each reader runs alone in it; the sender is another process) and the ratios of CPU per
event, which hold on a busy machine when events/s do not, with the load average.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from bench.load import loadavg
from support.children import dies_with_us

from telephony import events as ev
from telephony.ami.adapter import AmiAdapter
from telephony.ami.frames import Action, AmiParser, encode_message
from telephony.ami.simulator import BANNER, CALL_SCENARIOS, Pairs, overlapping, prepare

EVENTS = int(os.environ.get("BENCH_AMI_EVENTS", "200000"))
# A call's events 20 ms apart (as the screen-pop benchmark spreads them) at 50 calls/s: a
# new call starts with each event of the one before, and about 90 calls overlap.
OVERLAP = 1


def _blob(path: Path, apart: int | None) -> tuple[int, int]:
    """The stream: whole calls until EVENTS, back to back or, `apart`, overlapping (a new
    call every `apart` events); returns (events, calls)."""
    calls: list[list[Pairs]] = []
    count = 0
    while count < EVENTS:
        for name in CALL_SCENARIOS:
            calls.append(prepare(name))
            count += len(calls[-1])
    events = overlapping(calls, apart) if apart else [p for call in calls for p in call]
    path.write_bytes(b"".join(map(encode_message, events)))
    return count, len(calls)


def _server(path: str, sock: socket.socket, dies_with_parent: Callable[[], None]) -> None:
    """Child process: per connection, answer Login and CoreShowChannels, then stream."""
    dies_with_parent()
    blob = Path(path).read_bytes()
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(BANNER)
            parser = AmiParser(expect_banner=False)
            mode = conn.recv(6)
            if mode == b"BARE\r\n":
                conn.sendall(blob)
                continue
            pending = mode
            streamed = False
            while True:
                for action in parser.feed(pending):
                    if not isinstance(action, Action):
                        continue
                    aid = action.get("ActionID")
                    if action.name == "Login":
                        conn.sendall(encode_message([("Response", "Success"), ("ActionID", aid)]))
                    elif action.name == "CoreShowChannels":
                        conn.sendall(
                            encode_message([("Response", "Success"), ("ActionID", aid)])
                            + encode_message(
                                [
                                    ("Event", "CoreShowChannelsComplete"),
                                    ("ActionID", aid),
                                    ("EventList", "Complete"),
                                    ("ListItems", "0"),
                                ]
                            )
                        )
                        if not streamed:
                            streamed = True
                            conn.sendall(blob)
                    else:
                        conn.sendall(encode_message([("Response", "Success"), ("ActionID", aid)]))
                pending = conn.recv(65536)
                if not pending:
                    break


Rate = tuple[float, float]  # events/s, CPU µs per event


def _rate(total: int, start: float, cpu: float) -> Rate:
    elapsed, spent = time.perf_counter() - start, time.process_time() - cpu
    return total / elapsed, spent * 1e6 / total


async def _bare(port: int, total: int) -> Rate:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await reader.readuntil(b"\r\n")
    writer.write(b"BARE\r\n")
    await reader.readuntil(b"\r\n\r\n")
    start, cpu = time.perf_counter(), time.process_time()
    count = 1
    while count < total:
        await reader.readuntil(b"\r\n\r\n")
        count += 1
    rate = _rate(total, start, cpu)
    writer.close()
    return rate


async def _parser(port: int, total: int) -> Rate:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readuntil(b"\r\n")
    writer.write(b"BARE\r\n")
    parser = AmiParser(expect_banner=False)
    count = 0
    start, cpu = time.perf_counter(), time.process_time()
    while count < total:
        data = await reader.read(65536)
        if not data:
            break
        count += len(parser.feed(data))
    rate = _rate(total, start, cpu)
    writer.close()
    assert count == total
    return rate


async def _adapter(port: int, total: int, calls: int) -> tuple[Rate, int]:
    ended = 0
    done = asyncio.Event()

    async def sink(event: ev.CallEvent) -> None:
        nonlocal ended
        ended += isinstance(event, ev.CallEnded)
        if ended == calls:
            done.set()

    adapter = AmiAdapter(f"ami://crm:x@127.0.0.1:{port}", sink, ping_interval=60)
    await adapter.start()
    await adapter.wait_connected(10)
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.wait_for(done.wait(), 120)  # the last call's end is the stream's end
    rate = _rate(total, start, cpu)
    await adapter.stop()
    return rate, ended


def _measured(path: Path, apart: int | None) -> tuple[int, int, Rate, Rate, Rate, int]:
    total, calls = _blob(path, apart)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    # Forked, not spawned: the arguments are not pickled.
    server = ctx.Process(target=_server, args=(str(path), sock, dies_with_us()), daemon=True)
    server.start()
    try:
        # The best of three each: by CPU per event (events/s printed beside it).
        bare = min((asyncio.run(_bare(port, total)) for _ in range(3)), key=lambda r: r[1])
        parsed = min((asyncio.run(_parser(port, total)) for _ in range(3)), key=lambda r: r[1])
        adapted, ended = min(
            (asyncio.run(_adapter(port, total, calls)) for _ in range(3)), key=lambda r: r[0][1]
        )
    finally:
        server.kill()
        sock.close()
    return total, calls, bare, parsed, adapted, ended


def test_ami_ingestion_rate(tmp_path: Path) -> None:
    # Back to back, and as a PBX busy with 50 calls/s writes them (some call's start is
    # then nearly always held).
    for title, apart in (("calls back to back", None), ("calls overlapping", OVERLAP)):
        path = tmp_path / "events.ami"
        total, calls, bare, parsed, adapted, ended = _measured(path, apart)

        def line(name: str, rate: Rate, bare: Rate = bare) -> str:
            return (
                f"  {name:<24}: {rate[0]:10,.0f} events/s, CPU {rate[1]:5.2f} µs per event"
                f" ({bare[1] / rate[1]:.0%} of bare)"
            )

        print(
            f"\nAMI ingestion, {total} events ({path.stat().st_size / 1e6:.1f} MB), {title},"
            f" one core, {loadavg()}:\n"
            f"{line('bare readuntil splitter', bare)}\n"
            f"{line('AmiParser listener', parsed)}\n"
            f"{line('AmiAdapter end to end', adapted)} ({ended} calls ended)"
        )
        assert parsed[1] <= 2 * bare[1]
        assert ended == calls
