"""Kamailio (Debian `kamailio`) started from the repository's deploy/kamailio/kamailio.cfg
on a free loopback port, in front of the given bridge workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from support.children import dies_with_us
from support.peers import free_port, require_binary
from support.sipp import udp_bound

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "kamailio" / "kamailio.cfg"


@dataclass
class Kamailio:
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def running_kamailio(
    workdir: Path, workers: list[str], trunk: str, port: int | None = None
) -> AsyncIterator[Kamailio]:
    """`workers`: host:port of each bridge worker (2 calls each); `trunk`: host:port."""
    binary = require_binary("kamailio", "/usr/sbin/kamailio")
    port = port or free_port()
    run = workdir / f"kamailio-{port}"
    run.mkdir()
    (run / "dispatcher.list").write_text(
        "".join(f"1 sip:{address} 0 0 duid=w{i};maxload=2\n" for i, address in enumerate(workers))
    )
    log = run / "kamailio.log"
    output = await asyncio.to_thread(log.open, "wb")
    with output:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "-f",
            str(CONFIG),
            "-DD",  # in the foreground, a child of this test
            "-E",
            "-w",
            str(run),
            "-Y",
            str(run),
            "-m",
            "32",
            "-M",
            "4",
            "-A",
            f"SIP_ADDRESS=127.0.0.1:{port}",
            "-A",
            f'DISPATCHER_LIST="{run / "dispatcher.list"}"',
            "-A",
            f'TRUNK="sip:{trunk}"',
            stdout=output,
            stderr=output,
            preexec_fn=dies_with_us(),
        )
    kamailio = Kamailio(port, log)
    try:
        await udp_bound(port, proc, kamailio.output)
        yield kamailio
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
