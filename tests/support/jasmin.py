"""Jasmin 0.11.0 (an open-source SMS gateway nobody here wrote, never a dependency of
Callcard) as a peer of tests and benchmarks.

- It lives in its own venv, var/jasmin-venv (git-ignored), created on first use with
  `pip install jasmin==0.11.0` (0.11.1 stops DLRs reaching SMPP clients).
- jasmind runs with a config written to the run's temporary directory: free ports for
  its SMPP server, HTTP API, jCli and PB services, RabbitMQ at 127.0.0.1:5672
  guest/guest and the Redis it is given. Jasmin 0.11.0 selects its `dbid` only after an
  AUTH with a password, so on a Redis without one it works in database 0; its keys are
  `dlr:<id>` and `queue-msgid:<id>`. The AMQP spec is txamqp's copy (the wheel does not
  ship Jasmin's). jasmind's lock (/tmp/jasmind, one daemon per machine) is
  moved into the run's directory.
- A receipt can reach Jasmin before it has stored the message id the SMSC answered;
  Jasmin then retries the lookup after `dlr_lookup_retry_delay`: 1 s and 10 retries here
  instead of 10 s and 2, so no receipt is dropped and none waits 10 s.
- jCli (jcliadmin/jclipwd) configures connectors, users and routes (`JCli.add`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from support.children import dies_with_us
from support.peers import free_port, port_open

VERSION = "0.11.0"
VENV = Path(__file__).resolve().parents[2] / "var" / "jasmin-venv"
JCLI_USER, JCLI_PASSWORD = "jcliadmin", "jclipwd"  # jasmind's built-in defaults
RABBITMQ = ("127.0.0.1", 5672)


class JasminUnavailable(Exception):
    """Jasmin could not be installed, started or configured: the reason is the text."""


def peers_missing(redis: tuple[str, int]) -> str | None:
    """Why Jasmin cannot run here (its RabbitMQ or Redis is not listening), or None."""
    for peer, (host, port) in (("RabbitMQ", RABBITMQ), ("Redis", redis)):
        if not port_open(host, port):
            return f"{peer} is not listening on {host}:{port}"
    return None


def ensure_venv() -> Path:
    """The Python of Jasmin's own venv, created when missing."""
    python = VENV / "bin" / "python"
    if (VENV / "bin" / "jasmind.py").exists():
        return python
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(python), "-m", "pip", "install", "-q", f"jasmin=={VERSION}"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise JasminUnavailable(f"`{' '.join(step[-3:])}` failed: {' | '.join(tail)}")
    return python


def _config(ports: dict[str, int], redis: tuple[str, int]) -> str:
    spec = next(VENV.glob("lib/python3*/site-packages/txamqp/specs/standard/amqp0-9-1*.xml"))
    sections: dict[str, dict[str, object]] = {
        "smpp-server": {"bind": "127.0.0.1", "port": ports["smpp"]},
        "smpp-server-pb": {"bind": "127.0.0.1", "port": ports["smpp_pb"]},
        "client-management": {"bind": "127.0.0.1", "port": ports["cm"]},
        "router": {"bind": "127.0.0.1", "port": ports["router"]},
        "http-api": {"bind": "127.0.0.1", "port": ports["http"]},
        "jcli": {"bind": "127.0.0.1", "port": ports["jcli"]},
        "amqp-broker": {
            "host": RABBITMQ[0],
            "port": RABBITMQ[1],
            "username": "guest",
            "password": "guest",
            "spec": spec,
        },
        "redis-client": {"host": redis[0], "port": redis[1]},
        "dlr": {"dlr_lookup_retry_delay": 1, "dlr_lookup_max_retries": 10},
    }
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())
        for name, options in sections.items()
    )


# jasmind locks /tmp/jasmind so that it never runs twice on one machine; each run here has
# its own ports and connector ids, so it gets its own lock (then a benchmark and a test
# may run at once): jasmind.py is run with lockfile.FileLock pointed at argv[1].
_OWN_LOCK = """
import runpy, sys, lockfile
path, original = sys.argv[1], lockfile.FileLock
lockfile.FileLock = lambda _tmp_jasmind, *args, **kwargs: original(path, *args, **kwargs)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Jasmind:
    """jasmind as a child process, with the DLR lookup and DLR thrower in it."""

    def __init__(
        self, python: Path, workdir: Path, redis: tuple[str, int] = ("127.0.0.1", 6379)
    ) -> None:
        self.python = python
        self.workdir = workdir
        self.redis = redis
        self.ports = {n: free_port() for n in ("smpp", "smpp_pb", "cm", "router", "http", "jcli")}
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        for sub in ("log", "store"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        config = self.workdir / "jasmin.cfg"
        config.write_text(_config(self.ports, self.redis))
        env = {
            **os.environ,
            "ROOT_PATH": str(self.workdir),
            "CONFIG_PATH": str(self.workdir),
            "STORE_PATH": str(self.workdir / "store"),
            "LOG_PATH": str(self.workdir / "log"),
        }
        self.proc = await asyncio.create_subprocess_exec(
            str(self.python),
            "-c",
            _OWN_LOCK,
            str(self.workdir / "jasmind.lock"),
            str(VENV / "bin" / "jasmind.py"),
            "--config",
            str(config),
            "--enable-dlr-lookup",
            "--enable-dlr-thrower",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            preexec_fn=dies_with_us(),
        )
        assert self.proc.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), 5)
            except TimeoutError:
                continue
            line = raw.decode(errors="replace").strip()
            if not raw:
                break
            seen.append(line)
            if "Cannot start" in line:
                break
            if "jCli Started" in line:
                asyncio.get_running_loop().create_task(self._drain())
                return
        await self.stop()
        raise JasminUnavailable("jasmind did not start: " + " | ".join(seen[-3:]))

    async def _drain(self) -> None:
        # Its stdout is a pipe: keep reading so a chatty daemon never blocks on it.
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            # SIGKILL leaves its /tmp/jasmind lock behind; only a hung daemon gets it.
            self.proc.kill()
            await self.proc.wait()


class JCli:
    """The jCli telnet console: one command a line, answered by a `jcli : ` or `> ` prompt."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @contextlib.asynccontextmanager
    async def session(cls, port: int) -> AsyncIterator[JCli]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        cli = cls(reader, writer)
        try:
            await cli._until(b"Authentication required")
            # The prompt for the user name comes only after a first line.
            await cli.send("", b"Username: ")
            await cli.send(JCLI_USER, b"Password: ")
            answer = await cli.send(JCLI_PASSWORD, b"jcli : ", b"Incorrect")
            if b"Welcome" not in answer:
                raise JasminUnavailable(f"jCli login refused: {answer!r}")
            yield cli
        finally:
            writer.close()

    async def _until(self, *marks: bytes) -> bytes:
        buf = b""
        while not any(mark in buf for mark in marks):
            chunk = await asyncio.wait_for(self.reader.read(4096), 15)
            if not chunk:
                raise JasminUnavailable(f"jCli closed the session after {buf!r}")
            buf += chunk
        return buf

    async def send(self, line: str, *marks: bytes) -> bytes:
        self.writer.write(line.encode() + b"\r\n")
        return await self._until(*(marks or (b"jcli : ", b"> ")))

    async def add(self, command: str, settings: Sequence[str], done: bytes) -> None:
        """An interactive `-a` command: its settings, then `ok`, expecting `done`."""
        await self.send(command)
        for setting in settings:
            await self.send(setting)
        answer = await self.send("ok", b"jcli : ")
        if done not in answer:
            raise JasminUnavailable(f"jCli `{command}` failed: {answer!r}")


async def add_connector(cli: JCli, cid: str, smsc_port: int, smsc_password: str) -> None:
    """An SMPP client connector to the SMSC (transceiver, no throttle of its own: the
    default is 1/s), started and bound."""
    await cli.add(
        "smppccm -a",
        [
            f"cid {cid}",
            "host 127.0.0.1",
            f"port {smsc_port}",
            "username callcard",
            f"password {smsc_password}",
            "bind transceiver",
            "submit_throughput 0",
            "dlr_expiry 600",
        ],
        b"Successfully added connector",
    )
    answer = await cli.send(f"smppccm -1 {cid}", b"jcli : ")
    if b"Successfully started" not in answer:
        raise JasminUnavailable(f"connector not started: {answer!r}")
    deadline = time.monotonic() + 20
    while b"BOUND_TRX" not in await cli.send("smppccm --list", b"jcli : "):
        if time.monotonic() > deadline:
            raise JasminUnavailable("the connector did not bind to the SMSC")
        await asyncio.sleep(0.2)
