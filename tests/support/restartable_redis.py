"""A private redis-server a test starts, stops and restarts (with or without persistence),
on its own loopback port, so an outage of it hurts no other test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aredis

from support.children import dies_with_us
from support.peers import free_port, require_binary


class RestartableRedis:
    def __init__(self, directory: Path, *, persistent: bool) -> None:
        self.binary = require_binary("redis-server")
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",  # a clean stop keeps every write either way
        ]  # fmt: skip
        self._process = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=dies_with_us(),
        )
        client = aredis.Redis.from_url(self.url)
        try:
            for _ in range(200):
                with contextlib.suppress(aredis.ConnectionError, aredis.BusyLoadingError):
                    if await client.ping():
                        return
                await asyncio.sleep(0.025)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """SIGTERM, as `systemctl restart redis` does: it saves what its config says."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        self._process = None


@contextlib.asynccontextmanager
async def restartable_redis(
    directory: Path, *, persistent: bool
) -> AsyncIterator[RestartableRedis]:
    server = RestartableRedis(directory, persistent=persistent)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
