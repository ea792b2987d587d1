"""A real Callcard API server (uvicorn on a loopback port) inside the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from crm_api.app import Feature, create_app
from crm_api.platform.settings import Settings
from support.children import dies_with_us
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
    task = asyncio.create_task(_serve(server))
    try:
        await _started(server, task)
    except BaseException:
        await _abandon(server, task)
        raise
    try:
        yield RunningApi(app=app, settings=settings, base_url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def _serve(server: uvicorn.Server) -> None:
    """uvicorn reports a failed startup with `sys.exit(3)`. Raised in a task, a SystemExit
    escapes the event loop itself and tears pytest's bookkeeping apart (later tests then get
    an earlier test's fixtures), so it becomes an ordinary error here."""
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"the API server did not start (uvicorn exit {exc.code})") from None


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(60):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)


async def _abandon(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Stop a server that failed to start, so nothing of it outlives the test."""
    server.should_exit = True
    done, _ = await asyncio.wait([task], timeout=15)
    if not done:
        task.cancel()
        await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # already raised by _started


@dataclass
class ApiProcess:
    base_url: str
    process: asyncio.subprocess.Process

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as when the machine loses power."""
        self.process.kill()


# `callcard api` under cProfile, its statistics written to argv[1] when it stops. The clock
# is the process's CPU time: on a busy machine wall time mostly counts waits for a core.
# uvicorn raises SIGTERM again after its shutdown: the handler makes it an exit the
# profiler survives.
_PROFILED = """
import cProfile, runpy, signal, sys, time
out, sys.argv = sys.argv[1], ["callcard", "api"]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
profiler = cProfile.Profile(time.process_time)
try:
    profiler.runcall(runpy.run_module, "crm_api.cli", run_name="__main__")
except SystemExit:
    pass
finally:
    profiler.dump_stats(out)
"""


async def spawn_callcard(
    args: Sequence[str], env: Mapping[str, str], log: Path | None
) -> asyncio.subprocess.Process:
    """`python <args>` (a `callcard` command) as the tests start one: no demo data, its
    output to `log`, ending when the test process does."""
    environ = {**os.environ, "CALLCARD_SEED_DEMO_ON_FIRST_RUN": "false", **env}
    output = await asyncio.to_thread(open, log or os.devnull, "ab")
    with output:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env=environ,
            stdout=output,
            stderr=output,
            preexec_fn=dies_with_us(),
        )


@contextlib.asynccontextmanager
async def api_process(
    database_url: str, *, log: Path | None = None, profile: Path | None = None, **env: str
) -> AsyncIterator[ApiProcess]:
    """`callcard api` as its own process (benchmarks: the client gets the other core;
    durability tests: it can be killed). `log` receives its output; `profile`, the
    process's cProfile statistics when it has stopped."""
    port = free_port()
    command = ["-m", "crm_api.cli", "api"]
    if profile is not None:
        command = ["-c", _PROFILED, str(profile)]
    environ = {"CALLCARD_DATABASE_URL": database_url, "CALLCARD_BIND_PORT": str(port), **env}
    proc = await spawn_callcard(command, environ, log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as probe:
            # Under the profiler the imports alone take seconds on a busy machine.
            for _ in range(300 if profile is None else 1200):
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
    proc = await spawn_callcard(["-m", "crm_api.cli", command], env, log)
    try:
        yield CallcardProcess(proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
