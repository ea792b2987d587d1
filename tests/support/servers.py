"""The PostgreSQL and Redis servers a test run talks to.

With `CALLCARD_TEST_PG_URL` (an admin connection, e.g. `postgresql://postgres@127.0.0.1:5432/test`)
or `CALLCARD_TEST_REDIS_URL` set, those servers are used. Otherwise the run starts its own
from Debian's binaries, data in a temporary folder, on free loopback ports, and stops them at
the end: a fresh machine needs no configured server, and two runs never share one."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from support.children import dies_with_us
from support.peers import free_port, missing, port_open
from support.scratch import scratch_dir

PG_URL_VAR = "CALLCARD_TEST_PG_URL"
REDIS_URL_VAR = "CALLCARD_TEST_REDIS_URL"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    admin_db: str

    def dsn(self, db: str | None = None) -> str:
        """An asyncpg/libpq address of `db` (the admin database by default)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db or self.admin_db}"

    def url(self, db: str) -> str:
        """A SQLAlchemy URL of `db`."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{db}"


def pg_from_url(url: str) -> PgServer:
    parts = urlsplit(url)
    return PgServer(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        admin_db=parts.path.lstrip("/") or "postgres",
    )


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    return Path(versions[-1]).parent if versions else None


def _version_key(path: str) -> int:
    digits = Path(path).parts[-3]
    return int(digits) if digits.isdigit() else 0


def _postgres_user() -> dict[str, Any]:
    """initdb and the server refuse to run as root: then they run as Debian's `postgres`
    user (the server a direct child still, not one of runuser's)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[PgServer]:
    bindir = _pg_bindir()
    if bindir is None:
        missing("PostgreSQL", "no initdb found (make test installs Debian's postgresql)")
    assert bindir is not None
    home = scratch_dir("callcard-pg-")
    data = home / "data"
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    port = free_port()
    # Paths come from mkdtemp: no spaces, so plain splitting is safe.
    initdb = f"{bindir}/initdb -D {data} -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync"
    done = subprocess.run(
        initdb.split(), capture_output=True, text=True, check=False, **_postgres_user()
    )
    if done.returncode != 0:
        missing("PostgreSQL", f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
    # `postgres` itself in the foreground, not `pg_ctl start` (which daemonizes it): it stops
    # when this process ends, however it ends; SIGQUIT is an immediate shutdown.
    options = (
        f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    with open(home / "server.log", "wb") as log:
        server = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), *options.split()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=dies_with_us(signal.SIGQUIT),
            **_postgres_user(),
        )
    try:
        _ready(bindir, port, server, home / "server.log")
        yield PgServer(host="127.0.0.1", port=port, user="postgres", admin_db="postgres")
    finally:
        server.send_signal(signal.SIGQUIT)
        server.wait()
        shutil.rmtree(home, ignore_errors=True)


def _ready(bindir: Path, port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    """Returns once the server accepts connections (what `pg_ctl start -w` waits for)."""
    ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "1"]
    deadline = time.monotonic() + 60
    while subprocess.run(ready, check=False).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            missing("PostgreSQL", f"the server did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    given = os.environ.get(PG_URL_VAR)
    if given:
        server = pg_from_url(given)
        if not port_open(server.host, server.port):
            missing("PostgreSQL", f"nothing listens on {server.host}:{server.port} ({PG_URL_VAR})")
        yield server
        return
    with throwaway_postgres() as server:
        yield server


class RedisServer:
    """A private `redis-server` on a free port; restartable, with or without persistence."""

    def __init__(self, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("Redis", "redis-server is not installed (make test installs it)")
        assert binary is not None
        self.binary = binary
        self.port = free_port()
        self.appendonly = appendonly
        self.dir = scratch_dir("callcard-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=dies_with_us(),
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        missing("Redis", f"redis-server did not start on port {self.port}")
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """The URL of the run's Redis: the given one, or a private server."""
    given = os.environ.get(REDIS_URL_VAR)
    if given:
        client = redis.Redis.from_url(given)
        try:
            client.ping()
        except redis.RedisError as exc:
            missing("Redis", f"{exc} ({REDIS_URL_VAR})")
        finally:
            client.close()
        yield given
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()
