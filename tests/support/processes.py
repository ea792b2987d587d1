"""`callcard telephony` (or any headless command) as its own process, killable with -9,
its metrics served on a port of its own and its log in a file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from crm_api.platform.settings import Settings
from support.metrics import Scrape, scrape
from support.peers import free_port
from support.server import spawn_callcard
from support.waiting import wait_for
from telephony.ami.simulator import AmiSimulator

LEASE_S = 1.5  # of `telephony()`'s processes: a standby takes over this soon


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
        "CALLCARD_METRICS_BIND": f"127.0.0.1:{port}",
        "CALLCARD_LOG_FORMAT": "json",
        **env,
    }
    log = log_dir / f"{name}.log"
    proc = await spawn_callcard(["-m", "crm_api.cli", command], environ, log)
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


def telephony(
    name: str, settings: Settings, pbx: AmiSimulator, logs: Path, **env: str
) -> contextlib.AbstractAsyncContextManager[HeadlessProcess]:
    """A `callcard telephony` process of `pbx`, with the test's database and Redis."""
    return headless(
        "telephony",
        name,
        logs,
        CALLCARD_DATABASE_URL=settings.database_url,
        CALLCARD_REDIS_URL=str(settings.redis_url),
        CALLCARD_AMI_URL=pbx.url,
        CALLCARD_AGI_BIND=f"127.0.0.1:{free_port()}",
        CALLCARD_TELEPHONY_LEASE_S=str(LEASE_S),
        CALLCARD_SPOOL_DIR=str(logs / "spool"),  # the PBX's pair shares one, as on one host
        **env,
    )


async def active_one(pair: list[HeadlessProcess], pbx: AmiSimulator) -> HeadlessProcess:
    """The process that holds the lease and is logged in to AMI, once there is exactly one."""

    async def settled() -> HeadlessProcess | None:
        found = []
        for process in pair:
            metrics = await process.metrics()
            if metrics and metrics.value("callcard_telephony_active") == 1:
                found.append((process, metrics))
        if len(found) != 1 or pbx.sessions != 1:
            return None
        process, metrics = found[0]
        return process if metrics.value("callcard_ami_up") == 1 else None

    return await wait_for(settled, within=30)
