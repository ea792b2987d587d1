"""The Asterisk AMI adapter: one TCP connection, call events out, actions in.

A small asyncio client rather than panoramisk. What this adapter needs from the
connection is exactly where panoramisk 1.4 falls short (see shared/LIBRARIES.md), and
each would be a patch of its internals: it decodes every TCP read on its own (a UTF-8
character split across reads is dropped), runs coroutine callbacks out of order,
re-sends unanswered actions after a reconnect (an Originate may ring twice), and never
times a Ping out. The protocol itself is small: `frames.AmiParser` does the bytes, this
module only owns the socket, the login, the pending actions and the timers.

Guarantees:
- Call events reach the sink in AMI order, one at a time, from one dispatcher task (the
  sink may itself call `originate`: it never blocks the reader).
- Every action is bounded by a timeout; an action whose connection dies fails with
  PbxError("pbx_unreachable") and is never re-sent, so an Originate runs at most once.
- A Ping watchdog declares a silent Asterisk dead and reconnects, with backoff.
- After every login, `CoreShowChannels` resyncs live calls; the translator emits only
  what the CRM has not been told yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from telephony import events as ev
from telephony.ami.frames import AmiParser, Banner, Event, Malformed, Response, encode_action
from telephony.ami.translator import CallTranslator, PendingOriginate
from telephony.pbx import OriginateRequest, PbxError

log = logging.getLogger(__name__)

Sink = Callable[[ev.CallEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AmiUrl:
    host: str
    port: int
    username: str
    secret: str


def parse_ami_url(url: str) -> AmiUrl:
    """`ami://user:secret@host:5038` (user and secret may be %-encoded)."""
    parts = urlsplit(url)
    if parts.scheme != "ami" or not parts.hostname or not parts.username:
        raise ValueError(f"not an AMI URL (ami://user:secret@host:5038): {url!r}")
    return AmiUrl(
        host=parts.hostname,
        port=parts.port or 5038,
        username=unquote(parts.username),
        secret=unquote(parts.password or ""),
    )


@dataclass(slots=True)
class AmiStatus:
    """What an admin status page shows about the PBX link."""

    url: str
    connected: bool = False
    last_error: str | None = None
    connected_since: datetime | None = None
    last_error_at: datetime | None = None
    version: str | None = None  # from the banner
    connects: int = 0
    backoff_s: float | None = None  # the wait before the latest reconnect attempt
    events: int = 0
    last_event_at: datetime | None = None  # a quiet link is fine; a stale one is not
    malformed: int = 0
    live_calls: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "connected": self.connected,
            "last_error": self.last_error,
            "connected_since": self.connected_since.isoformat() if self.connected_since else None,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "version": self.version,
            "connects": self.connects,
            "backoff_s": self.backoff_s,
            "events": self.events,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "malformed": self.malformed,
            "live_calls": self.live_calls,
        }


class _LinkDown(Exception):
    pass


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Response]
    list_events: list[Event] | None = None  # for EventList actions (CoreShowChannels)
    # Called inline by the reader when the list completes, before any later event.
    on_complete: Callable[[list[Event]], None] | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class AmiAdapter:
    def __init__(
        self,
        url: str,
        sink: Sink,
        *,
        outbound_context: str = "internal",
        channel_tech: str = "PJSIP",
        action_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        translator: CallTranslator | None = None,
    ) -> None:
        self._url = parse_ami_url(url)
        self._sink = sink
        self._context = outbound_context
        self._tech = channel_tech
        self._action_timeout = action_timeout
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self.translator = translator or CallTranslator()
        safe = f"ami://{self._url.username}@{self._url.host}:{self._url.port}"
        self.status = AmiStatus(url=safe)
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._lists = 0  # list actions (CoreShowChannels) waiting for their events
        self._writer: asyncio.StreamWriter | None = None
        self._queue: asyncio.Queue[ev.CallEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._connected = asyncio.Event()
        self._logged_in = False  # in the current session: a later failure retries at once

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._stopping = False
        self._tasks = [  # the dispatcher first: stop() ends it last
            asyncio.create_task(self._dispatch(), name="ami-dispatch"),
            asyncio.create_task(self._run(), name="ami-connection"),
            asyncio.create_task(self._ticker(), name="ami-tick"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and self._connected.is_set():
            with contextlib.suppress(PbxError, OSError):
                await self._action("Logoff", [], limit_s=1.0)
        if not self._tasks:
            return  # never started, or stopped already
        dispatcher, *others = self._tasks
        for task in others:
            task.cancel()
        for task in others:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close()
        # Let the queued call events out (they are facts the CRM must not lose), and never
        # cancel the sink in the middle of one.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), 10.0)
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
        self._tasks = []

    async def wait_connected(self, within_s: float = 5.0) -> None:
        await asyncio.wait_for(self._connected.wait(), within_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def drain(self) -> None:
        """Wait until every call event received so far has reached the sink."""
        await self._queue.join()

    # ----------------------------------------------------------- Pbx protocol
    async def originate(self, request: OriginateRequest) -> None:
        action_id = f"orig-{next(self._ids)}"
        fields = [
            ("ActionID", action_id),
            ("Channel", f"{self._tech}/{request.agent}"),
            ("Context", self._context),
            ("Exten", request.number),
            ("Priority", "1"),
        ]
        if request.caller_id:
            fields.append(("CallerID", request.caller_id))
        fields += [
            ("Timeout", str(int(request.timeout_s * 1000))),
            ("Async", "true"),
            ("Variable", f"CRM_CALL_ID={request.crm_call_id}"),
        ]
        pending = PendingOriginate(request.crm_call_id, request.agent, request.number)
        self.translator.expect_originate(action_id, pending)
        try:
            response = await self._send(action_id, "Originate", fields)
        except PbxError:
            self.translator.forget_originate(action_id)
            raise
        if not response.ok:
            self.translator.forget_originate(action_id)
            raise PbxError("originate_rejected", response.message or "Originate refused")

    async def redirect(self, call_id: str, extension: str) -> None:
        channel = self._channel_of(call_id)
        response = await self._action(
            "Redirect",
            [
                ("Channel", channel),
                ("Context", self._context),
                ("Exten", extension),
                ("Priority", "1"),
            ],
        )
        if not response.ok:
            raise PbxError("redirect_failed", response.message or "Redirect refused")

    async def hangup(self, call_id: str) -> None:
        channel = self._channel_of(call_id)
        response = await self._action("Hangup", [("Channel", channel), ("Cause", "16")])
        if not response.ok:
            raise PbxError("hangup_failed", response.message or "Hangup refused")

    async def command(self, command: str) -> list[str]:
        """A CLI command's `Output:` lines (e.g. `core show version`)."""
        response = await self._action("Command", [("Command", command)])
        if not response.ok:
            raise PbxError("command_failed", response.message)
        return response.get_all("Output")

    def _channel_of(self, call_id: str) -> str:
        channel = self.translator.client_channel(call_id)
        if channel is None:
            raise PbxError("call_not_found", f"no live call {call_id}")
        return channel

    # -------------------------------------------------------------- actions
    async def _action(
        self, name: str, fields: list[tuple[str, str]], *, limit_s: float | None = None
    ) -> Response:
        action_id = f"{name.lower()}-{next(self._ids)}"
        return await self._send(action_id, name, [("ActionID", action_id), *fields], limit_s)

    async def _send(
        self,
        action_id: str,
        name: str,
        fields: list[tuple[str, str]],
        limit_s: float | None = None,
        pending: _Pending | None = None,
    ) -> Response:
        writer = self._writer
        if writer is None or (not self._connected.is_set() and name != "Login"):
            raise PbxError("pbx_unreachable", f"AMI not connected ({self.status.last_error})")
        loop = asyncio.get_running_loop()
        pending = pending or _Pending(loop.create_future())
        self._pending[action_id] = pending
        try:
            writer.write(encode_action(name, fields))
            await writer.drain()
            return await asyncio.wait_for(
                asyncio.shield(pending.future), limit_s or self._action_timeout
            )
        except TimeoutError:
            raise PbxError("pbx_timeout", f"no answer to {name} within the timeout") from None
        except (OSError, _LinkDown) as exc:
            raise PbxError("pbx_unreachable", f"AMI link lost during {name}: {exc}") from None
        finally:
            if pending.list_events is None:
                self._pending.pop(action_id, None)

    # ----------------------------------------------------------- connection
    async def _run(self) -> None:
        delay = self._backoff_min
        while not self._stopping:
            self._logged_in = False
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(str(exc) or exc.__class__.__name__)
            finally:
                self._close()
            if self._stopping:
                return
            if self._logged_in:
                delay = self._backoff_min  # a link that worked: the backoff starts over
            self.status.backoff_s = delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._url.host, self._url.port), self._connect_timeout
        )
        self._writer = writer
        parser = AmiParser()
        read_task = asyncio.create_task(self._read(reader, parser))
        try:
            login_id = f"login-{next(self._ids)}"
            fields = [
                ("ActionID", login_id),
                ("Username", self._url.username),
                ("Secret", self._url.secret),
            ]
            response = await self._send(login_id, "Login", fields, self._connect_timeout)
            if not response.ok:
                raise PermissionError(f"AMI login refused: {response.message or 'Error'}")
            self.status.connected = True
            self.status.connected_since = datetime.now(UTC)
            self.status.connects += 1
            self._connected.set()
            log.info("AMI connected to %s", self.status.url)
            self._logged_in = True
            await self._resync()
            watchdog = asyncio.create_task(self._watchdog())
            try:
                done, _ = await asyncio.wait(
                    {read_task, watchdog}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watchdog
            for task in done:
                task.result()  # raise what ended the session
        finally:
            read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read_task

    async def _resync(self) -> None:
        action_id = f"resync-{next(self._ids)}"
        loop = asyncio.get_running_loop()

        def apply(rows: list[Event]) -> None:
            self._publish(self.translator.resync(rows, datetime.now(UTC)))

        pending = _Pending(loop.create_future(), list_events=[], on_complete=apply)
        self._lists += 1
        try:
            response = await self._send(
                action_id, "CoreShowChannels", [("ActionID", action_id)], pending=pending
            )
            if not response.ok:
                raise ConnectionError(f"CoreShowChannels refused: {response.message}")
            # The reply is followed by the list; the reader applies it when complete.
            await asyncio.wait_for(pending.complete.wait(), self._action_timeout)
        except TimeoutError:
            raise PbxError("pbx_timeout", "CoreShowChannels list did not complete") from None
        finally:
            self._lists -= 1
            self._pending.pop(action_id, None)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                await self._action("Ping", [], limit_s=self._ping_timeout)
            except PbxError as exc:
                raise ConnectionError(
                    f"Asterisk silent: no answer to Ping within {self._ping_timeout:g}s"
                ) from exc

    async def _read(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        try:
            await self._read_loop(reader, parser)
        except (ConnectionError, OSError) as exc:
            self._fail_pending(exc)  # e.g. a Login waiting on a PBX that just hung up
            raise

    async def _read_loop(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("AMI connection closed by the PBX")
            now = self.status.last_event_at = datetime.now(UTC)
            for message in parser.feed(data):
                if isinstance(message, Event):
                    self._on_event(message, now)
                elif isinstance(message, Response):
                    self._on_response(message)
                elif isinstance(message, Banner):
                    self.status.version = message.version
                elif isinstance(message, Malformed):
                    self.status.malformed += 1
                    log.warning("AMI: skipped a malformed block (%s)", message.reason)

    def _on_response(self, response: Response) -> None:
        pending = self._pending.get(response.action_id or "")
        if pending is None:
            return
        if not pending.future.done():
            pending.future.set_result(response)

    def _on_event(self, event: Event, now: datetime) -> None:
        self.status.events += 1
        # Only list replies need their ActionID looked at; the rest skip the header split.
        lists = self._lists
        action_id = event.headers.get("ActionID") if lists else None
        if action_id is not None and event.name != "OriginateResponse":
            pending = self._pending.get(action_id)
            if pending is not None and pending.list_events is not None:
                if event.get("EventList") == "Complete":
                    callback, pending.on_complete = pending.on_complete, None
                    if callback is not None:
                        callback(pending.list_events)
                    pending.complete.set()
                else:
                    pending.list_events.append(event)
                return
            if action_id.startswith("resync-"):
                return  # the tail of a list whose action already timed out
        self._publish(self.translator.feed(event, now))

    def _publish(self, call_events: list[ev.CallEvent]) -> None:
        if not call_events:
            return
        for call_event in call_events:
            self._queue.put_nowait(call_event)
        self.status.live_calls = self.translator.live_count

    async def _dispatch(self) -> None:
        while True:
            call_event = await self._queue.get()
            try:
                await self._deliver(call_event)
            finally:
                self._queue.task_done()

    async def _deliver(self, call_event: ev.CallEvent) -> None:
        try:
            await self._sink(call_event)
        except Exception:
            log.exception("call event sink failed on %r", call_event)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._publish(self.translator.tick(datetime.now(UTC)))

    def _fail(self, error: str) -> None:
        self.status.last_error = error
        self.status.last_error_at = datetime.now(UTC)
        log.warning("AMI link to %s: %s", self.status.url, error)

    def _close(self) -> None:
        self._connected.clear()
        self.status.connected = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._fail_pending(_LinkDown("connection lost"))

    def _fail_pending(self, exc: Exception) -> None:
        # Unanswered actions fail now; they are never re-sent on the next connection.
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(_LinkDown(str(exc) or "connection lost"))
            pending.on_complete = None
        self._pending.clear()
