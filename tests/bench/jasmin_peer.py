"""Jasmin 0.11.0 beside Callcard in the SMS benchmark, against the same test SMSC (the
daemon itself: support/jasmin.py).

- jCli adds an SMPP client connector to the SMSC (submit_throughput 0), a group and user
  for the HTTP API and a DefaultRoute to the connector.
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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx
from support.jasmin import (
    VERSION,
    Jasmind,
    JasminUnavailable,
    JCli,
    add_connector,
    ensure_venv,
    peers_missing,
)
from support.peers import free_port

__all__ = ["VERSION", "JasminRun", "JasminUnavailable", "run_batch"]

HTTP_USER = HTTP_PASSWORD = "bench"
CONNECTOR = "callcard_bench"
ACK = b"ACK/Jasmin"


@dataclass
class JasminRun:
    accepted: int  # /send answered Success
    refused: list[str]  # the first few answers that were not Success
    receipts: int  # distinct receipts received for accepted messages
    submitted_s: float  # first request to last /send answer
    delivered_s: float  # first request to last receipt
    cpu_s: float  # jasmind's CPU time over the run
    early_receipts: int  # lookups retried: the receipt came before Jasmin stored the id


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def configure(port: int, smsc_port: int, smsc_password: str) -> None:
    async with JCli.session(port) as cli:
        await add_connector(cli, CONNECTOR, smsc_port, smsc_password)
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
    if why := peers_missing(("127.0.0.1", 6379)):
        raise JasminUnavailable(why)
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
