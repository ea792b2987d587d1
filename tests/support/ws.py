"""A WebSocket client for tests: collects frames, waits for one of a type. Every frame it
receives must match its model in `crm_api.frames.Frame` (what the OpenAPI document tells
the web app), or the test fails."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import TypeAdapter
from websockets.asyncio.client import ClientConnection, connect

from crm_api.frames import Frame
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.realtime.ws import PongFrame

FRAMES: TypeAdapter[Frame] = TypeAdapter(Frame)


def _checked(raw: str | bytes) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(raw)
    FRAMES.validate_python(frame)
    return frame


class Socket:
    def __init__(self, conn: ClientConnection, *, checked: bool = True) -> None:
        """`checked=False`: a test of the transport itself, publishing made-up frames."""
        self.conn = conn
        self.checked = checked
        self.frames: list[dict[str, Any]] = []

    async def next_of(self, type_: str, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                raw = await self.conn.recv()
                frame = _checked(raw) if self.checked else json.loads(raw)
                self.frames.append(frame)
                if frame["type"] == type_:
                    return frame

    async def send(self, type_: str, **data: Any) -> None:
        await self.conn.send(json.dumps({"type": type_, "data": data}))

    async def settle(self, hub: Hub, user_id: int) -> list[dict[str, Any]]:
        """The frames that arrive before a marker published now through `hub` to `user_id`
        (this socket's user). The bus delivers a socket's frames in the order they were
        published, so every frame published before the marker for this socket is among
        them: "nothing else came" proved by a frame that came, not by a silent interval."""
        start = len(self.frames)
        await hub.notify(PongFrame.name(), {}, users=[user_id])
        await self.next_of(PongFrame.name())
        return self.frames[start:-1]


def open_socket(url: str, token: str, since: str | None = None) -> Any:
    full = url + (f"?since={since}" if since else "")
    # The handshake's default 10 s is too short for a 2-core machine busy with other tests.
    return connect(full, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30)
