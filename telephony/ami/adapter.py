"""The Asterisk AMI adapter: one AMI connection, call events out, actions in.

The connection is a `panoramisk.Manager` (TCP, Login, action/response correlation,
reconnect), with what panoramisk 1.4 gets wrong for a call state machine fixed by
subclassing in `panoramisk_link`: the stream is split at the
byte level by `frames.AmiParser` (a UTF-8 character split across reads survives),
events reach the translator in order through a plain function, unanswered actions fail
instead of being re-sent after a reconnect, and the Ping watchdog is ours (panoramisk's
Ping never times out). This module owns the translator, the timers and the backoff.

Guarantees:
- Call events reach the sink in AMI order, one at a time, from one dispatcher task (the
  sink may itself call `originate`: it never blocks the reader).
- Every action is bounded by a timeout; an action whose connection dies fails with
  PbxError("pbx_unreachable") and is never re-sent, so an Originate runs at most once.
- A Ping watchdog declares a silent Asterisk dead and reconnects, with backoff
  (panoramisk reconnects after `reconnect_timeout`, which is set to the backoff). The
  backoff is capped at 2 s: a PBX that is back is found within a couple of seconds (a
  refused connect to a PBX that is down costs nothing), because a call placed in a
  longer gap is seen by the FastAGI router only.
- After every login, `CoreShowChannels` resyncs live calls; the translator emits only
  what the CRM has not been told yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from telephony import events as ev
from telephony.ami import devices
from telephony.ami.devices import DeviceStates
from telephony.ami.frames import Event, Interest, Response
from telephony.ami.panoramisk_link import (
    CLOSED_BY_PBX,
    AmiAction,
    AmiLinkProtocol,
    AmiManager,
    LinkDown,
    ListAction,
)
from telephony.ami.translator import CallTranslator, PendingOriginate
from telephony.call_context import about_call
from telephony.pbx import OriginateRequest, PbxError

log = logging.getLogger(__name__)

Sink = Callable[[ev.CallEvent], Awaitable[None]]
# Told once each (re)connect's CoreShowChannels is applied: when the PBX listed its live
# calls, and when the link before was last heard from (None on the first connect).
ResyncHook = Callable[[datetime, datetime | None], Awaitable[None]]
# Every action this adapter sends, lowercased as panoramisk compares them.
SENT_ACTIONS = (
    "login",
    "logoff",
    "ping",
    "coreshowchannels",
    "originate",
    "redirect",
    "hangup",
    "command",
)


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
        backoff_max: float = 2.0,
        translator: CallTranslator | None = None,
        on_resync: ResyncHook | None = None,
    ) -> None:
        self._url = parse_ami_url(url)
        self._on_resync = on_resync
        self._last_heard: datetime | None = None  # of the link that was lost
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
        self.devices = DeviceStates()  # phones ringing or talking, for routing
        # The events the parser builds: what the translator and the device states read,
        # as each declares it (most of Asterisk's events are dropped unbuilt).
        self.interest: Interest | None = self.translator.interest.including(devices.EVENTS)
        safe = f"ami://{self._url.username}@{self._url.host}:{self._url.port}"
        self.status = AmiStatus(url=safe)
        self._ids = itertools.count(1)
        self._manager: AmiManager | None = None
        self._protocol: AmiLinkProtocol | None = None  # the logged-in connection
        self._session: asyncio.Task[None] | None = None  # resync, then the Ping watchdog
        # Why the current connection failed, when this side knows better than the socket.
        self._session_error: str | None = None
        self._backoff = backoff_min  # the wait before the next reconnect
        self._queue: asyncio.Queue[ev.CallEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._connected = asyncio.Event()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._stopping = False
        self._backoff = self._backoff_min
        loop = asyncio.get_running_loop()
        self._manager = AmiManager(
            host=self._url.host,
            port=self._url.port,
            username=self._url.username,
            secret=self._url.secret,
            loop=loop,
            protocol_factory=functools.partial(AmiLinkProtocol, self),
            # Nothing is ever re-sent after a reconnect (the protocol fails it instead).
            forgetable_actions=SENT_ACTIONS,
            ping_delay=10**9,  # our watchdog times Pings out; panoramisk's never does
            connect_timeout=self._connect_timeout,
            on_login=self._on_login,
            on_disconnect=self._on_disconnect,
            on_login_failed=self._on_login_failed,
            on_connect_failed=self._on_connect_failed,
        )
        self._manager.reconnect_timeout = self._backoff  # panoramisk casts the kwarg to int
        self._tasks = [  # the dispatcher first: stop() ends it last
            asyncio.create_task(self._dispatch(), name="ami-dispatch"),
            asyncio.create_task(self._ticker(), name="ami-tick"),
        ]
        self._manager.connect()

    async def stop(self) -> None:
        self._stopping = True
        if self._connected.is_set():
            with contextlib.suppress(PbxError):
                await self._action("Logoff", [], limit_s=1.0)
        manager, self._manager = self._manager, None
        if manager is not None:
            # Before the PBX hangs up after its Goodbye: a closed manager neither logs the
            # loss as an error nor reconnects. What is still pending fails now.
            manager.close()
        if not self._tasks:
            return  # never started, or stopped already
        dispatcher, *others = self._tasks
        if self._session is not None:
            others.append(self._session)
        for task in others:
            task.cancel()
        for task in others:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._down()
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

    @property
    def up(self) -> bool:
        return self.connected

    async def drain(self) -> None:
        """Wait until every call event received so far has reached the sink."""
        await self._queue.join()

    def emit(self, call_events: list[ev.CallEvent]) -> None:
        """Events known from elsewhere (the routing server, a reconciliation), delivered
        in order with, and after, the call events already received."""
        for call_event in call_events:
            self._queue.put_nowait(call_event)

    # ----------------------------------------------------------- Pbx protocol
    async def originate(self, request: OriginateRequest) -> None:
        action_id = f"orig-{next(self._ids)}"
        fields = [
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
            response = await self._send(AmiAction("Originate", [("ActionID", action_id), *fields]))
        except (PbxError, ValueError):  # ValueError: a header with CR/LF, nothing sent
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
        return await self._send(AmiAction(name, [("ActionID", action_id), *fields]), limit_s)

    async def _send(self, action: AmiAction, limit_s: float | None = None) -> Response:
        protocol = self._protocol
        if protocol is None or protocol.closed or not self._connected.is_set():
            raise PbxError("pbx_unreachable", f"AMI not connected ({self.status.last_error})")
        try:
            future = protocol.send(action)
            response: Response = await asyncio.wait_for(
                asyncio.shield(future), limit_s or self._action_timeout
            )
            return response
        except TimeoutError:
            raise PbxError(
                "pbx_timeout", f"no answer to {action.name} within the timeout"
            ) from None
        except LinkDown as exc:
            raise PbxError(
                "pbx_unreachable", f"AMI link lost during {action.name}: {exc}"
            ) from None
        finally:
            protocol.forget(action.action_id)

    # ----------------------------------------------------------- connection
    # panoramisk calls these; each attempt ends in exactly one of the failure callbacks
    # or in on_login followed, later, by on_disconnect.
    def _on_login(self, manager: AmiManager) -> None:
        if manager is not self._manager or self._stopping:
            return
        protocol: AmiLinkProtocol = manager.protocol
        if protocol.closed:
            return  # lost between the answer and this callback: on_disconnect follows
        self._protocol = protocol
        self.status.connected = True
        self.status.connected_since = datetime.now(UTC)
        self.status.connects += 1
        # The resync is asked for now, before anything else can be written on this link.
        resync = self._resync_action()
        listed = protocol.send(resync)
        self._connected.set()
        log.info("AMI connected to %s", self.status.url)
        self._backoff = self._backoff_min  # a link that worked: the backoff starts over
        manager.reconnect_timeout = self._backoff
        self._session = asyncio.create_task(
            self._run_session(protocol, resync, listed), name="ami-session"
        )

    def _on_login_failed(self, manager: AmiManager, error: str) -> None:
        self._session_error = error  # reported when the connection is gone

    def _on_disconnect(self, manager: AmiManager, exc: BaseException | None) -> None:
        if manager is not self._manager:
            return
        self._down()
        if self._stopping:
            return
        error, self._session_error = self._session_error, None
        self._fail(error or (str(exc) if exc else CLOSED_BY_PBX))
        self._back_off(manager)

    def _on_connect_failed(self, manager: AmiManager, exc: BaseException) -> None:
        self._fail(str(exc) or exc.__class__.__name__)
        self._back_off(manager)

    def _back_off(self, manager: AmiManager) -> None:
        # panoramisk read reconnect_timeout before calling us: it is the wait now running.
        self.status.backoff_s = manager.reconnect_timeout
        self._backoff = min(manager.reconnect_timeout * 2, self._backoff_max)
        manager.reconnect_timeout = self._backoff

    def _down(self) -> None:
        if self._connected.is_set():
            self._last_heard = self.status.last_event_at
        self._connected.clear()
        self.status.connected = False
        self._protocol = None
        session, self._session = self._session, None
        if session is not None and session is not asyncio.current_task():
            session.cancel()

    async def _run_session(
        self, protocol: AmiLinkProtocol, resync: ListAction, listed: asyncio.Future[Response]
    ) -> None:
        try:
            try:
                response = await asyncio.wait_for(asyncio.shield(listed), self._action_timeout)
            except TimeoutError:
                raise PbxError("pbx_timeout", "CoreShowChannels list did not complete") from None
            except LinkDown:
                return  # on_disconnect says why
            finally:
                protocol.forget(resync.action_id)
            if not response.ok:
                raise ConnectionError(f"CoreShowChannels refused: {response.message}")
            hook = None
            if self._on_resync is not None:
                listed_at = self.status.connected_since or datetime.now(UTC)
                hook = asyncio.create_task(self._resynced(listed_at, self._last_heard))
            try:
                await self._watchdog()
            finally:
                if hook is not None:
                    hook.cancel()
        except (PbxError, ConnectionError) as exc:
            if not protocol.closed:
                self._session_error = str(exc)
                protocol.drop()

    async def _resynced(self, listed_at: datetime, last_heard: datetime | None) -> None:
        assert self._on_resync is not None
        try:
            await self._on_resync(listed_at, last_heard)
        except Exception:
            log.exception("AMI: the after-resync hook failed")

    def _resync_action(self) -> ListAction:
        def apply(rows: list[Event]) -> None:
            self._publish(self.translator.resync(rows, datetime.now(UTC)))

        # The future resolves once the list is complete and applied (inline in the reader,
        # before any later event).
        action_id = f"resync-{next(self._ids)}"
        return ListAction("CoreShowChannels", [("ActionID", action_id)], apply)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                await self._action("Ping", [], limit_s=self._ping_timeout)
            except PbxError as exc:
                if exc.reason != "pbx_timeout":
                    return  # the link is gone already: on_disconnect says why
                raise ConnectionError(
                    f"Asterisk silent: no answer to Ping within {self._ping_timeout:g}s"
                ) from exc

    # ------------------------------------------ the protocol's LinkListener
    def on_read(self, now: datetime) -> None:
        self.status.last_event_at = now

    def on_event(self, event: Event, now: datetime, admitted: bool) -> None:
        self.status.events += 1
        if event.name in devices.EVENTS:  # one in twenty: skip the call for the rest
            # Not about a call (no channel: the translator decodes nothing of one).
            self.devices.feed(event)
            return
        # What `interest` admitted is what the translator's admits, but for device events.
        read = self.translator.read if admitted else self.translator.feed
        call_events = read(event, now)
        if call_events:
            self._publish(call_events)

    def on_dropped(self, count: int) -> None:
        self.status.events += count

    def on_banner(self, version: str) -> None:
        self.status.version = version

    def on_malformed(self, reason: str) -> None:
        self.status.malformed += 1
        log.warning("AMI: skipped a malformed block (%s)", reason)

    def _publish(self, call_events: list[ev.CallEvent]) -> None:
        if not call_events:
            return
        for call_event in call_events:
            self._queue.put_nowait(call_event)
        self.status.live_calls = self.translator.live_count

    async def _dispatch(self) -> None:
        queue = self._queue
        while True:
            # A read queues its call events together: all but the first are taken without
            # a wait (`get` is a coroutine, one per event).
            call_event = queue.get_nowait() if queue.qsize() else await queue.get()
            try:
                with about_call(call_event.call_id):
                    try:
                        await self._sink(call_event)
                    except Exception:
                        log.exception("call event sink failed on %r", call_event)
            finally:
                queue.task_done()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._publish(self.translator.tick(datetime.now(UTC)))

    def _fail(self, error: str) -> None:
        self.status.last_error = error
        self.status.last_error_at = datetime.now(UTC)
        log.warning("AMI link to %s: %s", self.status.url, error)
