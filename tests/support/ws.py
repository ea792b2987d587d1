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

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Frames that arrive within `seconds` (to show nothing unexpected came)."""
        got = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    got.append(_checked(await self.conn.recv()))
        except TimeoutError:
            pass
        return got


def open_socket(url: str, token: str, since: str | None = None) -> Any:
    full = url + (f"?since={since}" if since else "")
    return connect(full, additional_headers={"Authorization": f"Bearer {token}"})
