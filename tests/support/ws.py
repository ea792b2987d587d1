"""A WebSocket client for tests: collects frames, waits for one of a type."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class Socket:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []

    async def next_of(self, type_: str, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                frame = json.loads(await self.conn.recv())
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
                    got.append(json.loads(await self.conn.recv()))
        except TimeoutError:
            pass
        return got


def open_socket(url: str, token: str, since: str | None = None) -> Any:
    full = url + (f"?since={since}" if since else "")
    return connect(full, additional_headers={"Authorization": f"Bearer {token}"})
