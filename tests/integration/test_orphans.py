"""A test process killed without its cleanup (SIGKILL, as an impatient CI runner or a
second Ctrl-C does) leaves none of the processes it started running: not its PostgreSQL
(which `pg_ctl` would have daemonized), its Redis, or its `callcard api`; and the next
run that starts a server removes the data folders the killed one left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.scratch import scratch_dir, sweep

TESTS = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# What a test run starts, the way it starts it; says so once it all runs.
_OWNER = """
import asyncio
from support.server import api_process
from support.servers import RedisServer, throwaway_postgres

async def serve(database_url):
    async with api_process(database_url):
        print("running", flush=True)
        await asyncio.sleep(3600)

with throwaway_postgres() as pg:
    redis = RedisServer()
    redis.start()
    asyncio.run(serve(pg.url("postgres")))
"""


def _parents() -> dict[int, int]:
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def _descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, by its command line."""
    parents = _parents()
    below, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        below |= frontier
    return {p: _command(p) for p in below}


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (one the container's init never reaps is gone all the same)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _folders(started: dict[int, str]) -> set[Path]:
    """The servers' temporary folders, which their killed owner cannot remove."""
    found = set()
    for pid, command in started.items():
        if "bin/postgres -D " in command:
            found.add(Path(command.split(" -D ", 1)[1].split()[0]).parent)
        elif "redis-server" in command:
            found.add(Path(os.readlink(f"/proc/{pid}/cwd")))  # it runs in its --dir
    return found


def test_nothing_a_killed_test_process_started_keeps_running() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER],
        cwd=TESTS,
        env={**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{TESTS.parent}"},
        stdout=subprocess.PIPE,
    )
    folders: set[Path] = set()
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline() == b"running\n", "the owner did not start its servers"
        started = _descendants(owner.pid)
        folders |= _folders(started)
        for program in ("bin/postgres -D", "redis-server", "crm_api.cli api"):
            assert any(program in command for command in started.values()), started
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 15
        while (left := {p: c for p, c in started.items() if _running(p)}) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert left == {}, f"left running after their owner was killed: {left}"
        assert len(folders) == 2 and all(folder.is_dir() for folder in folders), folders
        # As the next run's servers do, making their folders:
        removed = set(sweep("callcard-pg-")) | set(sweep("callcard-redis-"))
        assert folders <= removed and not any(folder.exists() for folder in folders)
        ours = scratch_dir("callcard-pg-")
        try:
            assert ours.is_dir() and ours not in sweep("callcard-pg-")  # a live run's stays
        finally:
            shutil.rmtree(ours, ignore_errors=True)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
