"""Jasmin 0.11.0 (an open-source SMS gateway, never a dependency of Callcard) run beside
Callcard in the SMS benchmark, against the same test SMSC.

- It lives in its own venv, var/jasmin-venv (git-ignored), created here on first use with
  `pip install jasmin==0.11.0` (0.11.1 stops DLRs reaching SMPP clients).
- jasmind runs with a config written to the run's temporary directory: free ports for
  its HTTP API, jCli, SMPP server and PB services, RabbitMQ at 127.0.0.1:5672
  guest/guest, Redis 127.0.0.1:6379. Jasmin 0.11.0 selects its `dbid` only after an
  AUTH with a password, so on a Redis without one it works in database 0; its keys are
  `dlr:<id>` (deleted on the final receipt) and `queue-msgid:<id>` (expire after the
  connector's dlr_expiry, set to 10 minutes here). The AMQP spec is txamqp's copy (the
  wheel does not ship Jasmin's). jasmind itself refuses to run twice on one machine
  (lock /tmp/jasmind).
- jCli (jcliadmin/jclipwd) then adds an SMPP client connector to the SMSC with
  submit_throughput 0 (no throttle; the default is 1/s), a group and user for the HTTP
  API and a DefaultRoute to the connector.
- A receipt can reach Jasmin before it has stored the message id the SMSC answered
  (the test SMSC sends the receipt as it accepts); Jasmin then retries the lookup after
  `dlr_lookup_retry_delay`: 1 s and 10 retries here instead of 10 s and 2, so no receipt
  is dropped and none waits 10 s.
- Messages go through GET /send (coding 8, hex-content, dlr=yes, dlr-level=2,
  dlr-method POST) with a fixed number of requests in flight; each receipt is POSTed by
  Jasmin to a small HTTP receiver here, which answers `ACK/Jasmin` (anything else makes
  Jasmin retry). For Jasmin "persisted" means received by that receiver.

What was seen here (2 cores): its connector takes the next message from RabbitMQ only
once the previous one is settled (prefetch 1, no SMPP window), and Twisted leaves its
sockets without TCP_NODELAY, so each message waits on delayed ACKs: about 30
submit_sm/s. Jasmin is measured as shipped; with TCP_NODELAY forced on its sockets (an
experiment, not part of this benchmark) 500 messages went at ~115/s. jasmind spends
~6 ms CPU per message (HTTP API, AMQP, per-message log lines)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx
from support.peers import free_port, port_open

VERSION = "0.11.0"
VENV = Path(__file__).resolve().parents[2] / "var" / "jasmin-venv"
JCLI_USER, JCLI_PASSWORD = "jcliadmin", "jclipwd"  # jasmind's built-in defaults
HTTP_USER = HTTP_PASSWORD = "bench"
CONNECTOR = "callcard_bench"
ACK = b"ACK/Jasmin"


class JasminUnavailable(Exception):
    """Jasmin could not be installed, started or configured: the reason is the text."""


@dataclass
class JasminRun:
    accepted: int  # /send answered Success
    refused: list[str]  # the first few answers that were not Success
    receipts: int  # distinct receipts received for accepted messages
    submitted_s: float  # first request to last /send answer
    delivered_s: float  # first request to last receipt
    cpu_s: float  # jasmind's CPU time over the run
    early_receipts: int  # lookups retried: the receipt came before Jasmin stored the id


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


def _config(ports: dict[str, int]) -> str:
    spec = next(VENV.glob("lib/python3*/site-packages/txamqp/specs/standard/amqp0-9-1*.xml"))
    sections: dict[str, dict[str, object]] = {
        "smpp-server": {"bind": "127.0.0.1", "port": ports["smpp"]},
        "smpp-server-pb": {"bind": "127.0.0.1", "port": ports["smpp_pb"]},
        "client-management": {"bind": "127.0.0.1", "port": ports["cm"]},
        "router": {"bind": "127.0.0.1", "port": ports["router"]},
        "http-api": {"bind": "127.0.0.1", "port": ports["http"]},
        "jcli": {"bind": "127.0.0.1", "port": ports["jcli"]},
        "amqp-broker": {
            "host": "127.0.0.1",
            "port": 5672,
            "username": "guest",
            "password": "guest",
            "spec": spec,
        },
        "redis-client": {"host": "127.0.0.1", "port": 6379},
        "dlr": {"dlr_lookup_retry_delay": 1, "dlr_lookup_max_retries": 10},
    }
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())
        for name, options in sections.items()
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Jasmind:
    """jasmind as a child process, with the DLR lookup and DLR thrower in it."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.python = python
        self.workdir = workdir
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
        config.write_text(_config(self.ports))
        env = {
            **os.environ,
            "ROOT_PATH": str(self.workdir),
            "CONFIG_PATH": str(self.workdir),
            "STORE_PATH": str(self.workdir / "store"),
            "LOG_PATH": str(self.workdir / "log"),
        }
        self.proc = await asyncio.create_subprocess_exec(
            str(self.python),
            str(VENV / "bin" / "jasmind.py"),
            "--config",
            str(config),
            "--enable-dlr-lookup",
            "--enable-dlr-thrower",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
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


async def configure(port: int, smsc_port: int, smsc_password: str) -> None:
    async with JCli.session(port) as cli:
        await cli.add(
            "smppccm -a",
            [
                f"cid {CONNECTOR}",
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
        answer = await cli.send(f"smppccm -1 {CONNECTOR}", b"jcli : ")
        if b"Successfully started" not in answer:
            raise JasminUnavailable(f"connector not started: {answer!r}")
        await cli.add("group -a", ["gid bench"], b"Successfully added Group")
        await cli.add(
            "user -a",
            [f"username {HTTP_USER}", f"password {HTTP_PASSWORD}", "gid bench", "uid bench"],
            b"Successfully added User",
        )
        await cli.add(
            "mtrouter -a",
            ["type DefaultRoute", f"connector smppc({CONNECTOR})", "rate 0.00"],
            b"Successfully added MTRoute",
        )
        deadline = time.monotonic() + 20
        while b"BOUND_TRX" not in await cli.send("smppccm --list", b"jcli : "):
            if time.monotonic() > deadline:
                raise JasminUnavailable("the connector did not bind to the SMSC")
            await asyncio.sleep(0.2)


@dataclass
class DlrReceiver:
    """Records the id of every receipt Jasmin POSTs and answers ACK/Jasmin."""

    ids: set[str] = field(default_factory=set)
    last_at: float = 0.0
    wanted: set[str] | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = field(default_factory=free_port)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dlr"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=512)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def _check(self) -> None:
        if self.wanted is not None and self.wanted <= self.ids:
            self.complete.set()

    async def wait_for(self, wanted: set[str], within: float) -> None:
        """Until a receipt for each of `wanted` has come, or `within` seconds."""
        self.wanted = wanted
        self._check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.complete.wait(), within)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                form = parse_qs((await reader.readexactly(length)).decode())
                if form.get("id", [""])[0] not in self.ids:
                    self.ids.add(form.get("id", [""])[0])
                    self.last_at = time.perf_counter()
                    self._check()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ACK), ACK))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _submit(
    http_port: int, batch: Sequence[tuple[str, str]], in_flight: int, dlr_url: str
) -> tuple[list[str], list[str]]:
    accepted: list[str] = []
    refused: list[str] = []
    todo = iter(batch)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}", limits=limits, timeout=60
    ) as http:

        async def worker() -> None:
            for to, body in todo:
                r = await http.get(
                    "/send",
                    params={
                        "username": HTTP_USER,
                        "password": HTTP_PASSWORD,
                        "to": to,
                        "coding": "8",
                        "hex-content": body.encode("utf-16-be").hex(),
                        "dlr": "yes",
                        "dlr-level": "2",
                        "dlr-method": "POST",
                        "dlr-url": dlr_url,
                    },
                )
                if r.status_code == 200 and r.text.startswith("Success"):
                    accepted.append(r.text.split('"')[1])
                elif len(refused) < 5:
                    refused.append(f"{r.status_code} {r.text[:100]}")

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return accepted, refused


async def run_batch(
    smsc_port: int,
    smsc_password: str,
    batch: Sequence[tuple[str, str]],
    in_flight: int,
    workdir: Path,
    within: float = 1500.0,
) -> JasminRun:
    """The batch (destination digits, text) through Jasmin's HTTP API to the SMSC, every
    receipt awaited; raises JasminUnavailable when Jasmin cannot be set up."""
    for peer, port in (("RabbitMQ", 5672), ("Redis", 6379)):
        if not port_open("127.0.0.1", port):
            raise JasminUnavailable(f"{peer} is not listening on 127.0.0.1:{port}")
    python = await asyncio.to_thread(ensure_venv)
    jasmind = Jasmind(python, workdir)
    receiver = DlrReceiver()
    await jasmind.start()
    try:
        await configure(jasmind.ports["jcli"], smsc_port, smsc_password)
        await receiver.start()
        cpu_started = _cpu_seconds(jasmind.pid)
        started = time.perf_counter()
        accepted, refused = await _submit(jasmind.ports["http"], batch, in_flight, receiver.url)
        submitted_at = time.perf_counter()
        wanted = set(accepted)
        await receiver.wait_for(wanted, within)
        cpu = _cpu_seconds(jasmind.pid) - cpu_started
    finally:
        await receiver.stop()
        await jasmind.stop()
    return JasminRun(
        accepted=len(accepted),
        refused=refused,
        receipts=len(wanted & receiver.ids),
        submitted_s=submitted_at - started,
        delivered_s=max(receiver.last_at, submitted_at) - started,
        cpu_s=cpu,
        early_receipts=(workdir / "log" / "messages.log").read_text().count("DLRMapNotFound"),
    )
