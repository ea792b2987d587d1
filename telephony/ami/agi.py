"""FastAGI routing server: the dialplan asks `AGI(agi://crm:4573/route,${CALLERID(num)},${EXTEN})`
and we answer `SET VARIABLE CALLCARD_ROUTE <extension>`.

Written on asyncio streams rather than `panoramisk.fast_agi`, which spins the loop at 100% CPU
on a client that connects and closes before its headers (every TCP health probe), cannot call
plain-function routes and raises on EOF mid-command. The dialplan waits for us while the caller
hears ringing, so every answer is bounded: a slow or failing router gives the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telephony.call_context import current_call

log = logging.getLogger(__name__)

ROUTE_VARIABLE = "CALLCARD_ROUTE"
MAX_ENV_LINES = 200
MAX_LINE = 4096
# What the dialplan may get: an extension, `queue:<name>`, or a channel like PJSIP/101.
_TARGET = re.compile(r"^[A-Za-z0-9_+.@/:-]{1,80}$")
_REPLY = re.compile(r"^(?P<code>\d{3})(?:[ -](?P<rest>.*))?$")
_RESULT = re.compile(r"result=(?P<result>-?\w*)")


class AgiProtocolError(ValueError):
    """The peer did not speak FastAGI."""


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """One FastAGI session's environment, as the routing policy needs it."""

    script: str  # the path of agi://host:port/<script>, without a query
    channel: str
    call_id: str  # agi_uniqueid: the trunk leg's, which is the call's Linkedid on inbound calls
    caller: str | None  # None when withheld or unknown
    caller_name: str | None
    did: str | None  # the number dialled: the second AGI argument, else the extension
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int
    result: str | None


def _known(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "unknown", "anonymous", "Anonymous") else value


def parse_environment(lines: list[str]) -> AgiRequest:
    """The `agi_*: value` lines Asterisk sends first, before the empty line."""
    env: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"not an AGI environment line: {line[:60]!r}")
        env[key.strip()] = value.strip()
    if "agi_uniqueid" not in env or "agi_channel" not in env:
        raise AgiProtocolError("AGI environment without agi_uniqueid or agi_channel")
    script = env.get("agi_network_script", "").split("?", 1)[0].strip("/")
    args = []
    index = 1
    while f"agi_arg_{index}" in env:
        args.append(env[f"agi_arg_{index}"])
        index += 1
    did = _known(args[1]) if len(args) > 1 else None
    return AgiRequest(
        script=script,
        channel=env["agi_channel"],
        call_id=env["agi_uniqueid"],
        caller=_known(args[0] if args else None) or _known(env.get("agi_callerid")),
        caller_name=_known(env.get("agi_calleridname")),
        did=did or _known(env.get("agi_dnid")) or _known(env.get("agi_extension")),
        args=tuple(args),
    )


def parse_reply(line: str) -> AgiReply:
    """`200 result=1`, `510 Invalid or unknown command`, or `HANGUP` after the caller left."""
    line = line.strip()
    if line == "HANGUP":
        return AgiReply(code=511, result=None)
    match = _REPLY.match(line)
    if match is None:
        raise AgiProtocolError(f"not an AGI reply: {line[:60]!r}")
    found = _RESULT.search(match.group("rest") or "")
    return AgiReply(code=int(match.group("code")), result=found.group("result") if found else None)


def set_variable_command(name: str, value: str) -> bytes:
    if not _TARGET.match(value):
        raise ValueError(f"refusing to send {value!r} to the dialplan")
    return f'SET VARIABLE {name} "{value}"\n'.encode()


Router = Callable[[AgiRequest], Awaitable[str | None]]


@dataclass(slots=True)
class AgiStats:
    sessions: int = 0
    routed: int = 0
    fallbacks: int = 0
    probes: int = 0  # connected and left (or sent garbage) before a full environment
    hangups: int = 0  # the caller left while we answered


class FastAgiServer:
    """Answers each `route` request with the router's extension, or the fallback when the
    router is slow, fails, or has nobody."""

    def __init__(
        self,
        router: Router,
        *,
        fallback: str,
        variable: str = ROUTE_VARIABLE,
        scripts: tuple[str, ...] = ("route",),
        decide_within: float = 0.8,
        io_timeout: float = 5.0,
    ) -> None:
        if not _TARGET.match(fallback):
            raise ValueError(f"invalid fallback route {fallback!r}")
        self.router = router
        self.fallback = fallback
        self.variable = variable
        self.scripts = scripts
        self.decide_within = decide_within
        self.io_timeout = io_timeout
        self.stats = AgiStats()
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listens; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=MAX_LINE)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI routing server on %s:%s", host, bound)
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._session(reader, writer))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.sessions += 1
        try:
            try:
                request = parse_environment(
                    await asyncio.wait_for(_read_environment(reader), self.io_timeout)
                )
            except (TimeoutError, AgiProtocolError, ConnectionError, ValueError) as exc:
                self.stats.probes += 1
                log.debug("FastAGI peer left or spoke garbage before its environment: %s", exc)
                return
            current_call.set(request.call_id)  # this session's task: its lines are the call's
            if request.script not in self.scripts:
                log.warning("FastAGI request for unknown script %r", request.script)
                return
            target = await self._decide(request)
            writer.write(set_variable_command(self.variable, target))
            await asyncio.wait_for(writer.drain(), self.io_timeout)
            line = await asyncio.wait_for(reader.readline(), self.io_timeout)
            reply = parse_reply(line.decode("utf-8", "replace")) if line else None
            if reply is None or reply.code != 200:
                self.stats.hangups += 1
                log.info("call %s left before taking its route (%s)", request.call_id, reply)
        except (TimeoutError, ConnectionError, AgiProtocolError, ValueError) as exc:
            self.stats.hangups += 1
            log.info("FastAGI session ended early: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _decide(self, request: AgiRequest) -> str:
        try:
            target = await asyncio.wait_for(self.router(request), self.decide_within)
        except TimeoutError:
            log.warning("routing %s took too long; fallback %s", request.call_id, self.fallback)
            target = None
        except Exception:
            log.exception("routing %s failed; fallback %s", request.call_id, self.fallback)
            target = None
        if target is None or not _TARGET.match(target):
            self.stats.fallbacks += 1
            return self.fallback
        self.stats.routed += 1
        return target


async def _read_environment(reader: asyncio.StreamReader) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise AgiProtocolError("closed before the end of the AGI environment") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiProtocolError("AGI environment line too long") from exc
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            return lines
        lines.append(line)
        if len(lines) > MAX_ENV_LINES:
            raise AgiProtocolError("AGI environment too long")
