"""`/ws`: one socket per browser tab. Authenticated like the HTTP API; resumes with
`?since=<last frame id>` (missed frames replayed, or `resync` when too old)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from crm_api.accounts.permissions import Permission, allowed, may_watch_client
from crm_api.platform.deps import Services, authorized_user, get_services, token_of
from crm_api.platform.realtime.frames import frame_key
from crm_api.platform.realtime.hub import Connection

router = APIRouter()
log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408


class ClientMessage(BaseModel):
    type: str
    data: dict[str, object] = {}


def _control(type_: str, data: dict[str, object] | None = None) -> str:
    return json.dumps({"id": None, "type": type_, "data": data or {}, "ts": None})


async def _sender(ws: WebSocket, conn: Connection, last_replayed: str | None) -> None:
    floor = frame_key(last_replayed) if last_replayed else None
    while True:
        frame = await conn.queue.get()
        if frame is None:  # overflowed: the browser reconnects with ?since= and catches up
            await ws.close(code=CLOSE_TOO_SLOW)
            return
        if floor is not None and frame_key(frame.id) <= floor:
            continue  # already sent in the replay
        await ws.send_text(frame.wire())


async def _receiver(ws: WebSocket, conn: Connection, services: Services) -> None:
    while True:
        raw = await ws.receive_text()
        try:
            message = ClientMessage.model_validate_json(raw)
        except ValidationError:
            await ws.send_text(_control("error", {"message": "malformed frame"}))
            continue
        if message.type == "ping":
            await ws.send_text(_control("pong"))
        elif message.type in ("watch", "unwatch"):
            client_id = message.data.get("client_id")
            if not isinstance(client_id, int):
                await ws.send_text(_control("error", {"message": "client_id must be a number"}))
                continue
            if message.type == "unwatch":
                conn.watching.discard(client_id)
                continue
            async with services.sessions() as session:
                may = await may_watch_client(session, conn.user_id, client_id)
            if not may:
                await ws.send_text(_control("error", {"message": f"cannot watch #{client_id}"}))
                continue
            conn.watching.add(client_id)
            await ws.send_text(_control("watching", {"client_id": client_id}))
        else:
            await ws.send_text(_control("error", {"message": f"unknown type {message.type!r}"}))


@router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    services = await get_services(ws)
    token = token_of(ws)
    user = await authorized_user(services, token) if token else None
    if user is None:
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
                await ws.send_text(_control("resync"))
            else:
                for frame in missed:
                    if conn.wants(frame, live=False):
                        await ws.send_text(frame.wire())
                    last_replayed = frame.id
        await ws.send_text(_control("hello", {"user_id": user.id}))
        tasks = [
            asyncio.create_task(_sender(ws, conn, last_replayed)),
            asyncio.create_task(_receiver(ws, conn, services)),
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
