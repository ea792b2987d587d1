"""The WebSocket hub of one API worker: its open sockets, and delivery of every bus
frame to the sockets it is meant for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_api.platform.realtime.bus import Bus
from crm_api.platform.realtime.frames import Audience, Frame, frame_key
from crm_api.platform.realtime.outage import Outage, is_outage

log = logging.getLogger(__name__)
SOCKET_QUEUE = 1000  # frames waiting for a slow socket before it is dropped


@dataclass(eq=False)
class Connection:
    user_id: int
    role: str
    watching: set[int] = field(default_factory=set)
    queue: asyncio.Queue[Frame | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=SOCKET_QUEUE)
    )
    overflowed: bool = False

    def addressed(self, frame: Frame) -> bool:
        """Meant for this user or role (rather than for a card this socket watches)."""
        return self.user_id in frame.audience.user_ids or self.role in frame.audience.roles

    def wants(self, frame: Frame, *, live: bool = True) -> bool:
        aud = frame.audience
        if self.addressed(frame):
            return True
        # Card watches belong to this socket's session; a replay has none yet.
        return live and aud.client_id is not None and aud.client_id in self.watching

    def offer(self, frame: Frame) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True  # the socket resumes with ?since= after reconnecting
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.get_nowait()
                self.queue.put_nowait(None)


class Hub:
    def __init__(self, bus: Bus, published: Callable[[Frame], None] | None = None) -> None:
        """`published` sees each frame this process published (the metrics count them),
        not a copy the bus dropped."""
        self.bus = bus
        self._published = published
        self._connections: set[Connection] = set()
        # The sockets by what an audience names: a frame costs the sockets it is for, not
        # every socket of the worker (thousands of operators, a pop for one of them).
        self._by_user: dict[int, set[Connection]] = {}
        self._by_role: dict[str, set[Connection]] = {}
        self._by_card: dict[int, set[Connection]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready), name="ws-hub")
        await ready.wait()

    async def stop(self) -> None:
        if self._task:
            await self.bus.close()  # ends its subscription within a read
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 2.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in self._connections:
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(None)

    async def _run(self, ready: asyncio.Event) -> None:
        outage = Outage("realtime bus subscription", log)
        while True:
            try:
                subscribed = await self.bus.subscribe(self._deliver)
                outage.ok()
                ready.set()
                await subscribed
                return  # the bus was closed
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Frames missed meanwhile reach sockets through ?since= on reconnect.
                if is_outage(exc):
                    outage.failed(exc)
                else:
                    log.exception("realtime bus subscription failed; resubscribing")
                ready.set()
                await asyncio.sleep(1)

    def _deliver(self, frame: Frame) -> None:
        """To each socket the frame is meant for (`Connection.wants`), once."""
        audience = frame.audience
        targets: set[Connection] = set()
        for user_id in audience.user_ids:
            targets.update(self._by_user.get(user_id, ()))
        for role in audience.roles:
            targets.update(self._by_role.get(role, ()))
        if audience.client_id is not None:
            targets.update(self._by_card.get(audience.client_id, ()))
        for conn in targets:
            conn.offer(frame)

    def register(self, conn: Connection) -> None:
        self._connections.add(conn)
        _index(self._by_user, conn.user_id, conn)
        _index(self._by_role, conn.role, conn)
        for client_id in conn.watching:
            _index(self._by_card, client_id, conn)

    def unregister(self, conn: Connection) -> None:
        self._connections.discard(conn)
        _unindex(self._by_user, conn.user_id, conn)
        _unindex(self._by_role, conn.role, conn)
        for client_id in conn.watching:
            _unindex(self._by_card, client_id, conn)

    def watch(self, conn: Connection, client_id: int) -> None:
        """The socket gets the frames of this card from now on."""
        conn.watching.add(client_id)
        if conn in self._connections:
            _index(self._by_card, client_id, conn)

    def unwatch(self, conn: Connection, client_id: int) -> None:
        conn.watching.discard(client_id)
        _unindex(self._by_card, client_id, conn)

    def change_role(self, conn: Connection, role: str) -> None:
        """The user's new role: frames for the old one stop reaching the socket."""
        _unindex(self._by_role, conn.role, conn)
        conn.role = role
        if conn in self._connections:
            _index(self._by_role, role, conn)

    def online_user_ids(self) -> set[int]:
        return {c.user_id for c in self._connections}

    @property
    def sockets(self) -> int:
        return len(self._connections)

    async def notify(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        users: Iterable[int] = (),
        roles: Iterable[str] = (),
        client_id: int | None = None,
    ) -> Frame:
        """Publishes a frame after the change it reports was committed."""
        audience = Audience(user_ids=frozenset(users), roles=frozenset(roles), client_id=client_id)
        return await self.publish(Frame(type=type_, data=data, audience=audience))

    async def publish(self, frame: Frame) -> Frame:
        """`frame` as the bus numbered it. After an error, retry with the same frame: the
        failed attempt may have gone out, and readers drop a second copy of a frame."""
        return await self.publish_now(frame)

    def publish_now(self, frame: Frame) -> Coroutine[Any, Any, Frame]:
        """`publish`, handed to the bus before this returns (`Bus.publish_now`)."""
        return self._reported(self.bus.publish_now(frame))

    async def _reported(self, publishing: Coroutine[Any, Any, Frame]) -> Frame:
        published = await publishing
        if self._published is not None and published.id:
            self._published(published)
        return published

    async def publish_many(self, frames: Sequence[Frame]) -> list[Frame]:
        """`publish` of each frame, in order, in one round trip to the bus."""
        published = await self.bus.publish_many(frames)
        if self._published is not None:
            for frame in published:
                if frame.id:
                    self._published(frame)
        return published


def _index(index: dict[Any, set[Connection]], key: Any, conn: Connection) -> None:
    index.setdefault(key, set()).add(conn)


def _unindex(index: dict[Any, set[Connection]], key: Any, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]


def after(frames: list[Frame], last_id: str | None) -> list[Frame]:
    if last_id is None:
        return frames
    key = frame_key(last_id)
    return [f for f in frames if frame_key(f.id) > key]
