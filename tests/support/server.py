"""A real Callcard API server (uvicorn on a loopback port) inside the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from crm_api.app import Feature, create_app
from crm_api.platform.settings import Settings
from support.peers import free_port


@dataclass
class RunningApi:
    app: FastAPI
    settings: Settings
    base_url: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url + "/api/v1", headers=headers, timeout=30)


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings, features: tuple[Feature, ...] = ()
) -> AsyncIterator[RunningApi]:
    port = free_port()
    settings = settings.model_copy(update={"bind_port": port})
    app = create_app(settings, features=features)
    # The server keeps idle connections longer than httpx's pool does (5 s): with equal
    # timeouts a request can go out on a connection the server is closing (a ReadError).
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws_ping_interval=None,
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("the API server did not start")
    try:
        yield RunningApi(app=app, settings=settings, base_url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class ApiProcess:
    base_url: str
    process: asyncio.subprocess.Process

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as when the machine loses power."""
        self.process.kill()


@contextlib.asynccontextmanager
async def api_process(
    database_url: str, *, log: Path | None = None, **env: str
) -> AsyncIterator[ApiProcess]:
    """`callcard api` as its own process (benchmarks: the client gets the other core;
    durability tests: it can be killed). `log` receives its output."""
    port = free_port()
    environ = {
        **os.environ,
        "CALLCARD_DATABASE_URL": database_url,
        "CALLCARD_BIND_PORT": str(port),
        "CALLCARD_SEED_DEMO_ON_FIRST_RUN": "false",
        **env,
    }
    output = await asyncio.to_thread(open, log or os.devnull, "ab")
    with output:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crm_api.cli", "api", env=environ, stdout=output, stderr=output
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(300):
                try:
                    if (await probe.get(base + "/api/v1/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.returncode is not None:
                    raise RuntimeError(f"callcard api exited with {proc.returncode}")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("callcard api did not start")
        yield ApiProcess(base, proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


@dataclass
class CallcardProcess:
    process: asyncio.subprocess.Process

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        self.process.kill()


@contextlib.asynccontextmanager
async def callcard_process(
    command: str, *, log: Path, **env: str
) -> AsyncIterator[CallcardProcess]:
    """Another `callcard` command (e.g. `telephony`) as its own process, stopped with
    SIGTERM at the end unless the test killed it; `log` receives its output."""
    environ = {**os.environ, "CALLCARD_SEED_DEMO_ON_FIRST_RUN": "false", **env}
    output = await asyncio.to_thread(open, log, "ab")
    with output:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crm_api.cli", command, env=environ, stdout=output, stderr=output
        )
    try:
        yield CallcardProcess(proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
