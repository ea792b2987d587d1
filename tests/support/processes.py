"""`callcard telephony` (or any headless command) as its own process, killable with -9,
its metrics served on a port of its own and its log in a file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.metrics import Scrape, scrape
from support.peers import free_port


@dataclass
class HeadlessProcess:
    name: str
    process: asyncio.subprocess.Process
    metrics_url: str
    log: Path

    async def metrics(self) -> Scrape | None:
        """None once the process is gone (or before it serves)."""
        if self.process.returncode is not None:
            return None
        try:
            return await scrape(self.metrics_url)
        except httpx.TransportError:
            return None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released, as when the host loses power."""
        self.process.kill()


@contextlib.asynccontextmanager
async def headless(
    command: str, name: str, log_dir: Path, **env: str
) -> AsyncIterator[HeadlessProcess]:
    port = free_port()
    environ = {
        **os.environ,
        "CALLCARD_METRICS_BIND": f"127.0.0.1:{port}",
        "CALLCARD_SEED_DEMO_ON_FIRST_RUN": "false",
        "CALLCARD_LOG_FORMAT": "json",
        **env,
    }
    log = log_dir / f"{name}.log"
    output = await asyncio.to_thread(open, log, "ab")
    with output:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crm_api.cli", command, env=environ, stdout=output, stderr=output
        )
    running = HeadlessProcess(name, proc, f"http://127.0.0.1:{port}/metrics", log)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
