"""The AMI connection on panoramisk, with its 1.4 shortcomings fixed by subclassing.

`panoramisk.Manager` owns the TCP connection, the Login, the action/response table and
the reconnect. What it gets wrong for a call state machine is overridden here:
- `AmiLinkProtocol.data_received` splits the stream at the byte level with
  `frames.AmiParser` (panoramisk decodes every read on its own and drops a UTF-8
  character split across reads) and hands every message on in wire order: events to a
  plain function of the listener (never a coroutine callback started out of order),
  responses to the pending action's future.
- A lost connection fails every pending action at once with `LinkDown`; nothing is
  queued for a re-send on the next connection (an Originate must run at most once).
- `AmiManager` bounds the TCP connect, keeps a refused Login from raising inside a done
  callback (and drops that connection), and stops reconnecting once closed.
Ping is the caller's business (`ping_delay` huge): panoramisk's Ping never times out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from panoramisk import Manager, actions
from panoramisk.ami_protocol import AMIProtocol

from telephony.ami.frames import (
    AmiMessage,
    AmiParser,
    Banner,
    Event,
    Interest,
    Malformed,
    Response,
    encode_action,
)

CLOSED_BY_PBX = "AMI connection closed by the PBX"


class LinkDown(Exception):
    """The connection an action was sent on is gone; the action is not re-sent."""


class LinkListener(Protocol):
    """What the protocol reports to, synchronously and in wire order. Only the events
    its `interest` admits are built and reported (`admitted`), the others counted
    (`on_dropped`); while a list is read, or without an interest, every event is."""

    @property
    def interest(self) -> Interest | None: ...

    def on_read(self, now: datetime) -> None: ...

    def on_event(self, event: Event, now: datetime, admitted: bool) -> None: ...

    def on_dropped(self, count: int) -> None: ...

    def on_banner(self, version: str) -> None: ...

    def on_malformed(self, reason: str) -> None: ...


class AmiAction(actions.Action):  # type: ignore[misc]
    """A panoramisk action that keeps its fields in the order given (panoramisk sorts
    them); its future resolves to a `frames.Response`."""

    def __init__(self, name: str, fields: Iterable[tuple[str, str]]) -> None:
        pairs = list(fields)
        super().__init__({"Action": name, **dict(pairs)})
        if not any(key.lower() == "actionid" for key, _ in pairs):
            pairs.insert(0, ("ActionID", self["ActionID"]))  # panoramisk made one up
        self.name = name
        self.fields = pairs

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AmiAction:
        """panoramisk's own actions (the Login) come as dicts."""
        pairs: list[tuple[str, str]] = []
        for key, value in data.items():
            if key.lower() == "action":
                continue
            values = value if isinstance(value, list | tuple) else [value]
            pairs += [(key, str(v)) for v in values]
        return cls(str(data["Action"]), pairs)

    @property
    def wire(self) -> bytes:
        return encode_action(self.name, self.fields)


class ListAction(AmiAction):
    """An EventList action (CoreShowChannels): its rows follow the response up to the
    `EventList: Complete` event. `on_complete` runs inline in the reader, before any
    later event is handed on; the future then resolves to the response."""

    def __init__(
        self,
        name: str,
        fields: Iterable[tuple[str, str]],
        on_complete: Callable[[list[Event]], None],
    ) -> None:
        super().__init__(name, fields)
        self.rows: list[Event] = []
        self.response: Response | None = None
        self.on_complete = on_complete


class AmiLinkProtocol(AMIProtocol):  # type: ignore[misc]
    def __init__(self, listener: LinkListener) -> None:
        self.listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.parser = AmiParser()
        # ActionIDs of list actions, pending or abandoned after a timeout (whose tail
        # must still be swallowed): only then do events need their ActionID looked at.
        self.list_ids: set[str] = set()

    # ---------------------------------------------------------------- actions
    def send(self, data: Mapping[str, Any], as_list: bool | None = False) -> asyncio.Future[Any]:
        action = data if isinstance(data, AmiAction) else AmiAction.from_mapping(data)
        if self.closed:
            action.future.set_exception(LinkDown(CLOSED_BY_PBX))
            return action.future  # type: ignore[no-any-return]
        wire = action.wire  # may raise ValueError (header injection): nothing is sent
        self.responses[action.action_id] = action
        if isinstance(action, ListAction):
            self.list_ids.add(action.action_id)
        self.transport.write(wire)
        return action.future  # type: ignore[no-any-return]

    def forget(self, action_id: str) -> None:
        """The caller gave up (timeout): a late answer is ignored, a late list swallowed."""
        self.responses.pop(action_id, None)

    def drop(self) -> None:
        """End this connection; panoramisk reconnects (the manager stays open)."""
        if not self.closed:
            self.transport.close()

    def close(self) -> None:
        # Fail what is pending before panoramisk's close, which would queue it for a
        # re-send on the next connection.
        pending = list(self.responses.values())
        self.responses.clear()
        self.list_ids.clear()
        for action in pending:
            if not action.future.done():
                action.future.set_exception(LinkDown(CLOSED_BY_PBX))
                action.future.exception()  # a caller that gave up will not look: no warning
        super().close()

    # ---------------------------------------------------------------- reading
    def data_received(self, data: bytes) -> None:
        listener = self.listener
        now = datetime.now(UTC)
        listener.on_read(now)
        parser, interest = self.parser, listener.interest
        dropped = parser.dropped
        # A list's rows (CoreShowChannel...) are events nobody else reads: while one is
        # awaited, a read is taken whole (list_ids only grows outside this method).
        messages: Iterable[AmiMessage]
        if interest is None or self.list_ids:
            admitted, messages = False, parser.feed(data)
        else:
            admitted, messages = True, parser.stream(data, interest)
        for message in messages:
            if isinstance(message, Event):
                if self.list_ids and self._list_row(message):
                    continue
                listener.on_event(message, now, admitted)
            elif isinstance(message, Response):
                self._on_response(message)
            elif isinstance(message, Banner):
                self.version = message.version
                listener.on_banner(message.version)
            elif isinstance(message, Malformed):
                listener.on_malformed(message.reason)
        if parser.dropped != dropped:
            listener.on_dropped(parser.dropped - dropped)

    def _on_response(self, response: Response) -> None:
        action_id = response.action_id or ""
        action = self.responses.get(action_id)
        if action is None:
            return
        if isinstance(action, ListAction) and response.ok:
            action.response = response  # the rows follow
            return
        del self.responses[action_id]
        self.list_ids.discard(action_id)
        if not action.future.done():
            action.future.set_result(response)

    def _list_row(self, event: Event) -> bool:
        action_id = event.headers.get("ActionID")
        if action_id is None or action_id not in self.list_ids:
            return False
        if event.name == "OriginateResponse":
            return False
        action = self.responses.get(action_id)
        if event.get("EventList") != "Complete":
            if action is not None:
                action.rows.append(event)
            return True  # a row (or the tail of a list whose caller gave up)
        self.list_ids.discard(action_id)
        if action is not None:
            del self.responses[action_id]
            action.on_complete(action.rows)
            if not action.future.done():
                ok = Response({"Response": "Success", "ActionID": action_id})
                action.future.set_result(action.response or ok)
        return True


class _QuietLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """panoramisk logs every lost connection at ERROR, a Logoff's included, without a
    reason; the adapter logs the loss with its reason. Its own lines stay, as warnings."""

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.warning(msg, *args, **kwargs)


class AmiManager(Manager):  # type: ignore[misc]
    """`panoramisk.Manager` with a bounded connect, a Login that reports failures instead
    of raising in a callback, and no reconnect after `close()`.

    `on_connect_failed(manager, exc)` and `on_login_failed(manager, reason)` complete
    panoramisk's `on_login`/`on_disconnect`: between them every attempt is reported once.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        on_connect_failed: Callable[[AmiManager, BaseException], None],
        on_login_failed: Callable[[AmiManager, str], None],
        **config: Any,
    ) -> None:
        config.setdefault("log", _QuietLog(logging.getLogger("panoramisk.manager")))
        super().__init__(**config)
        self.connect_timeout = connect_timeout
        self.on_connect_failed = on_connect_failed
        self.on_login_failed = on_login_failed
        self.closed = False
        self._connecting: asyncio.Task[Any] | None = None

    def connect(self, *_: Any) -> asyncio.Task[Any] | None:
        if self.closed:
            return None  # a reconnect scheduled before close()
        opening = self.loop.create_connection(
            self.config["protocol_factory"],
            self.config["host"],
            self.config["port"],
            ssl=self.config["ssl"],
        )
        task = self._connecting = self.loop.create_task(
            asyncio.wait_for(opening, self.connect_timeout)
        )
        task.add_done_callback(self.connection_made)
        return task

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        self._connecting = None
        if f.cancelled():
            return
        exc = f.exception()
        if self.closed:
            if exc is None:
                f.result()[0].close()
            return
        if exc is not None:
            # panoramisk retries only OSError; any failure retries here, with backoff.
            self.on_connect_failed(self, exc)
            self.loop.call_later(self.reconnect_timeout, self.connect)
            return
        super().connection_made(f)

    def login(self, future: asyncio.Future[Any]) -> bool:
        self.authenticated_future = None
        self.authenticated = False
        if future.cancelled():
            return False
        exc = future.exception()
        if exc is not None:
            self.on_login_failed(self, f"AMI link lost during Login: {exc}")
            return False
        response: Response = future.result()
        if not response.ok:
            self.on_login_failed(self, f"AMI login refused: {response.message or 'Error'}")
            self.protocol.drop()  # Asterisk closes it too; never wait for that
            return False
        self.authenticated = True
        self.loop.call_soon(self.on_login, self)
        return True

    def ping(self) -> None:
        """panoramisk's Ping never times out; the adapter runs its own watchdog."""

    def close(self) -> None:
        self.closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        super().close()
