"""The HTTP boundary: what a request may carry before any route sees it.

A body over its route's limit is refused with 413 before it is read to the end (by its
Content-Length when it has one, else while it streams in). NUL and other control
characters in the path, the query or a JSON string are refused with 422: PostgreSQL
cannot store NUL, and XLSX cannot hold the others. Tab, line feed and carriage return
stay allowed (notes have lines)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB
# Control characters a text field may not hold (C0 but tab, LF and CR; DEL).
FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same characters as a JSON string escape writes them; confirmed by parsing (an escaped
# backslash before "u0001" is harmless text).
_ESCAPED = re.compile(rb"\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F]|7[fF])")


def has_forbidden_chars(text: str) -> bool:
    return FORBIDDEN_CHARS.search(text) is not None


@dataclass(frozen=True)
class BodyLimits:
    """The most bytes a request body may have: per `METHOD /path` prefix, else `default`."""

    default: int = 1 * MIB
    routes: Mapping[str, int] = field(default_factory=dict)

    def for_request(self, method: str, path: str) -> int:
        key = f"{method} {path}"
        best = ""
        for prefix in self.routes:
            if key.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.routes[best] if best else self.default


class BodyTooLarge(Exception):
    pass


def _strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, str(key)), str(key)
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _strings(item, (*path, str(n)))


def _bad_json_field(body: bytes) -> str | None:
    """The first JSON string holding a forbidden character, as a dotted field name."""
    if _ESCAPED.search(body) is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parsing answers
    for path, text in _strings(data):
        if has_forbidden_chars(text):
            return ".".join(path) or "body"
    return None


def _error(status: int, code: str, message: str, details: dict[str, Any]) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "details": details}}, ensure_ascii=False
    ).encode()


class BoundaryGuard:
    """ASGI middleware; bodies are read whole (they are small: the limits say so) and
    handed on unchanged."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self._bad_location(scope):
                await send({"type": "websocket.close", "code": 1008, "reason": "bad characters"})
                return
            await self.app(scope, receive, send)
            return
        where = self._bad_location(scope)
        if where is not None:
            await self._reject_chars(send, where)
            return
        limit = self.limits.for_request(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(send, limit)
            return
        try:
            body = await _read_body(receive, limit)
        except BodyTooLarge:
            await self._too_large(send, limit)
            return
        if _is_json(scope):
            bad = _bad_json_field(body)
            if bad is not None:
                await self._reject_chars(send, bad)
                return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    def _bad_location(scope: Scope) -> str | None:
        if has_forbidden_chars(scope["path"]):
            return "path"
        query = scope.get("query_string", b"").decode("latin-1")
        if query and has_forbidden_chars(unquote(query, errors="replace")):
            return "query"
        return None

    @staticmethod
    async def _reject_chars(send: Send, where: str) -> None:
        message = "control characters (such as NUL) are not allowed"
        details = {"fields": [{"field": where, "message": message}]}
        await _send_json(send, 422, _error(422, "validation_error", f"{where}: {message}", details))

    @staticmethod
    async def _too_large(send: Send, limit: int) -> None:
        body = _error(
            413,
            "payload_too_large",
            f"the request body may have at most {limit} bytes here",
            {"limit": limit},
        )
        await _send_json(send, 413, body, close=True)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return False


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect, when the client goes

    return replay


async def _send_json(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:  # the rest of the body is not read: the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
