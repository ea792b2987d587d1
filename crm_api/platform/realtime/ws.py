"""`/ws`: one socket per browser tab. Authenticated like the HTTP API; resumes with
`?since=<last frame id>` (missed frames replayed, or `resync` when too old)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from crm_api.accounts.models import User
from crm_api.accounts.notifier import SESSION_CHANGED
from crm_api.accounts.permissions import Permission, allowed, may_watch_client
from crm_api.accounts.service import touch_session
from crm_api.platform.deps import (
    Services,
    authorized_user,
    credential_of,
    get_services,
    same_origin,
)
from crm_api.platform.realtime.frames import FrameModel, frame_key
from crm_api.platform.realtime.hub import Connection

router = APIRouter()
log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408


class ClientMessage(BaseModel):
    type: str
    data: dict[str, object] = {}


# The socket's own frames (no `id`: not in the backlog, never replayed).
class Hello(BaseModel):
    user_id: int


class ClientRef(BaseModel):
    client_id: int


class Problem(BaseModel):
    message: str


class Nothing(BaseModel):
    pass


class HelloFrame(FrameModel):
    """Sent once the replay of `?since=` is over: frames from here on are live."""

    type: Literal["hello"] = "hello"
    data: Hello


class PongFrame(FrameModel):
    type: Literal["pong"] = "pong"
    data: Nothing


class ResyncFrame(FrameModel):
    """`?since=` is older than the backlog: refetch instead."""

    type: Literal["resync"] = "resync"
    data: Nothing


class WatchingFrame(FrameModel):
    type: Literal["watching"] = "watching"
    data: ClientRef


class UnwatchedFrame(FrameModel):
    """The card is no longer this user's to see: its frames stop."""

    type: Literal["unwatched"] = "unwatched"
    data: ClientRef


class ErrorFrame(FrameModel):
    type: Literal["error"] = "error"
    data: Problem


def _control(frame: FrameModel) -> str:
    return frame.model_dump_json()


def _error(message: str) -> str:
    return _control(ErrorFrame(data=Problem(message=message)))


Recheck = Callable[[], Awaitable[User | None]]


async def _sender(
    ws: WebSocket, conn: Connection, last_replayed: str | None, recheck: Recheck, services: Services
) -> None:
    floor = frame_key(last_replayed) if last_replayed else None
    while True:
        frame = await conn.queue.get()
        if frame is None:  # overflowed: the browser reconnects with ?since= and catches up
            await ws.close(code=CLOSE_TOO_SLOW)
            return
        if frame.type == SESSION_CHANGED:
            # Logout, a new password, a revoked token, deactivation or a new role.
            services.tokens.forget_user(conn.user_id)
            user = await recheck()
            if user is None or not allowed(user.role, Permission.SELF):
                await ws.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
                return
            services.hub.change_role(conn, str(user.role))  # frames for the old role stop here
            continue
        if floor is not None and frame_key(frame.id) <= floor:
            continue  # already sent in the replay
        if not conn.addressed(frame):  # rights may have changed since it was queued
            client_id = frame.audience.client_id
            if client_id is None or client_id not in conn.watching:
                continue
            if not await _may_see(services, conn.user_id, client_id):
                services.hub.unwatch(conn, client_id)
                await ws.send_text(_control(UnwatchedFrame(data=ClientRef(client_id=client_id))))
                continue
        await ws.send_text(frame.wire())


async def _may_see(services: Services, user_id: int, client_id: int) -> bool:
    """A frame that comes only through a card watch: is the card still this user's to
    see? It may have been reassigned since the watch began."""
    async with services.reads() as session:
        return await may_watch_client(session, user_id, client_id)


async def _keep_in_use(services: Services, token: str) -> None:
    """An open tab is a session in use (an operator may have only the console open all
    day): its last use is written down every `session_touch_seconds`, never per frame."""
    while True:
        await asyncio.sleep(services.settings.session_touch_seconds)
        try:
            async with services.sessions() as session:
                await touch_session(session, token)
                await session.commit()
        except Exception:  # a database blip must not close the socket; the next try may do
            log.warning("could not mark the session of a socket in use", exc_info=True)


async def _receiver(ws: WebSocket, conn: Connection, services: Services) -> None:
    while True:
        raw = await ws.receive_text()
        try:
            message = ClientMessage.model_validate_json(raw)
        except ValidationError:
            await ws.send_text(_error("malformed frame"))
            continue
        if message.type == "ping":
            await ws.send_text(_control(PongFrame(data=Nothing())))
        elif message.type in ("watch", "unwatch"):
            client_id = message.data.get("client_id")
            if not isinstance(client_id, int):
                await ws.send_text(_error("client_id must be a number"))
                continue
            if message.type == "unwatch":
                services.hub.unwatch(conn, client_id)
                continue
            async with services.sessions() as session:
                may = await may_watch_client(session, conn.user_id, client_id)
            if not may:
                await ws.send_text(_error(f"cannot watch #{client_id}"))
                continue
            services.hub.watch(conn, client_id)
            await ws.send_text(_control(WatchingFrame(data=ClientRef(client_id=client_id))))
        else:
            await ws.send_text(_error(f"unknown type {message.type!r}"))


@router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    services = await get_services(ws)
    if ws.headers.get("origin") and not same_origin(ws, services.settings):
        # Another site's page would ride on the user's cookie (cross-site WebSocket hijacking).
        await ws.close(code=CLOSE_FORBIDDEN, reason="not from this site")
        return
    found = credential_of(ws)
    user = await authorized_user(services, found.token, found.source) if found else None
    if user is None or found is None:
        # Accepted only to be closed: a browser cannot read why a handshake was refused,
        # and a tab whose session ended while its socket was away must learn it (the
        # sign-in page), not retry for ever.
        await ws.accept()
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="log in first")
        return
    if not allowed(user.role, Permission.SELF):
        await ws.close(code=CLOSE_FORBIDDEN)
        return
    await ws.accept()
    conn = Connection(user_id=user.id, role=str(user.role))
    services.hub.register(conn)  # before the replay, so nothing falls between the two
    last_replayed: str | None = None
    try:
        since = ws.query_params.get("since")
        if since:
            missed = await services.hub.bus.since(since)
            if missed is None:
                await ws.send_text(_control(ResyncFrame(data=Nothing())))
            else:
                for frame in missed:
                    if conn.wants(frame, live=False):
                        await ws.send_text(frame.wire())
                    last_replayed = frame.id
        await ws.send_text(_control(HelloFrame(data=Hello(user_id=user.id))))

        async def recheck() -> User | None:
            return await authorized_user(services, found.token, found.source)

        tasks = [
            asyncio.create_task(_sender(ws, conn, last_replayed, recheck, services)),
            asyncio.create_task(_receiver(ws, conn, services)),
            asyncio.create_task(_keep_in_use(services, found.token)),
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            exc = task.exception()
            if exc and not isinstance(exc, WebSocketDisconnect):
                log.warning("socket of user %s ended: %r", user.id, exc)
    except WebSocketDisconnect:
        pass
    finally:
        services.hub.unregister(conn)
        with contextlib.suppress(Exception):
            await ws.close()
