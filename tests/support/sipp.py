"""SIPp (Debian sip-tester) as the carrier and the managers' phones, on 127.0.0.1.

Scenarios live in tests/integration/sip/scenarios/ (with the G.711 pcap they play).
Each run keeps its SIP message trace, read by the tests for the responses it got."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from support.children import dies_with_us
from support.peers import free_port, require_binary

SCENARIOS = Path(__file__).resolve().parent.parent / "integration" / "sip" / "scenarios"
STARTED: list[Sipp] = []  # every SIPp of the running test, for its teardown


def holds_udp_port(pid: int, port: int) -> bool:
    """Whether process `pid` itself has a UDP socket bound to `port` (Linux's /proc)."""
    suffix = f":{port:04X}"
    sockets = {
        f"socket:[{fields[9]}]"
        for fields in (line.split() for line in Path("/proc/net/udp").read_text().splitlines()[1:])
        if fields[1].endswith(suffix)
    }
    with contextlib.suppress(OSError):  # the process is gone
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # that descriptor was closed meanwhile
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    return True
    return False


async def udp_bound(
    port: int, proc: asyncio.subprocess.Process, output: Callable[[], str], within: float = 10.0
) -> None:
    """Returns once `proc` has bound UDP `port` (not once anybody has: then `proc` fails)."""
    deadline = asyncio.get_running_loop().time() + within
    while not holds_udp_port(proc.pid, port):
        if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{port} was not bound (exit {proc.returncode}):\n{output()}")
        await asyncio.sleep(0.02)


@dataclass
class Sipp:
    proc: asyncio.subprocess.Process
    trace: Path
    errors: Path  # why SIPp stopped: "Unable to bind main socket" with its exit 254
    port: int
    media_port: int

    async def wait(self, within: float = 30.0) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            await self.kill()
            message = f"SIPp did not finish within {within}s:\n{self.output()}"
            raise AssertionError(message) from None

    async def listening(self, within: float = 10.0) -> None:
        """Returns once SIPp holds its SIP port (a UAS must, before it is dialled)."""
        await udp_bound(self.port, self.proc, self.output, within)

    async def kill(self) -> None:
        """Ends SIPp now (and reaps it: nothing outlives the test's loop)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()

    def log(self) -> str:
        try:
            return self.trace.read_text(errors="replace")
        except OSError:
            return ""

    def output(self) -> str:
        """SIPp's errors, then its message trace: for a failure's message."""
        try:
            errors = self.errors.read_text(errors="replace")
        except OSError:
            errors = ""
        return f"{errors}\n{self.log()}"

    def responses(self) -> list[int]:
        """Status codes of the responses SIPp received, in order."""
        codes = []
        for block in self.log().split("message received")[1:]:
            found = re.search(r"^SIP/2\.0 (\d{3})", block.split("\n", 1)[1].lstrip(), re.M)
            if found:
                codes.append(int(found.group(1)))
        return codes

    def received(self, request: str) -> int:
        """How many `request`s (INVITE, CANCEL, BYE...) SIPp received."""
        return len(
            [b for b in self.log().split("message received")[1:] if f"\n{request} " in b[:300]]
        )


async def start_sipp(
    scenario: str,
    workdir: Path,
    *,
    target: str | None = None,
    service: str = "74951234567",
    pause_ms: int = 1000,
    calls: int = 1,
    rtp_echo: bool = False,
    rate: float | None = None,
    limit: int | None = None,
    keys: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> Sipp:
    binary = require_binary("sipp")
    port = free_port()
    media_port = free_port(4)  # RTP on it and on + 2, RTCP on + 1 and + 3
    trace = workdir / f"{scenario}-{port}.msg.log"
    errors = workdir / f"{scenario}-{port}.err.log"
    args = [
        binary,
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-m",
        str(calls),
        "-d",
        str(pause_ms),
        "-s",
        service,
        "-nostdin",
        "-trace_msg",
        "-message_file",
        str(trace),
        "-trace_err",
        "-error_file",
        str(errors),
        "-timeout",
        "60",
        "-timeout_error",
    ]
    for key, value in {"pt": "8", "codec": "PCMA/8000", **(keys or {})}.items():
        args += ["-key", key, value]
    if rtp_echo:
        args.append("-rtp_echo")
    if rate is not None:
        args += ["-r", str(rate)]
    if limit is not None:
        args += ["-l", str(limit)]
    args += list(extra)
    if target is not None:
        args.append(target)
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=SCENARIOS,  # the scenarios name their pcap relative to it
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=dies_with_us(),
    )
    sipp = Sipp(proc, trace, errors, port, media_port)
    STARTED.append(sipp)
    return sipp


async def kill_left() -> None:
    """Ends the SIPp processes a test left running (it failed, or never waited on one)."""
    while STARTED:
        sipp = STARTED.pop()
        if sipp.proc.returncode is None:
            await sipp.kill()
