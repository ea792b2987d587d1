"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for latency benchmarks.

httpx spends about a millisecond of its own per request (URL and header models, the
connection pool, h11's state machine) in the same process as the clock: for sub-2 ms
targets that is most of what gets measured. This client writes the request bytes and
reads the whole response (status line, headers, a Content-Length or chunked body) on one
connection, so a sample is the server's time plus the loopback round trip."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise RuntimeError(f"HTTP {self.status}: {self.body[:500]!r}")


class LeanClient:
    """One connection, one request at a time (a benchmark measures them one by one);
    `headers` go with every request."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self.headers: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanClient:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def post(self, path: str, json_body: Any) -> Response:
        return await self.request("POST", path, json.dumps(json_body).encode())

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        assert self._reader is not None and self._writer is not None, "use `async with`"
        head = [f"{method} {self._prefix}{path} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        head += [f"{name}: {value}" for name, value in self.headers.items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        return await self._read_response(self._reader)

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> Response:
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            raise RuntimeError(f"a response without a length: {headers}")
        return Response(status, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")  # the blank line after the last chunk (no trailers)
    return b"".join(chunks)
