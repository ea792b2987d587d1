"""Incremental AMI wire parser: bytes in, typed messages out. Pure, no I/O.

AMI is line based: `Key: Value\\r\\n` headers, a blank line ends a message. The first
line of a connection is the banner (`Asterisk Call Manager/11.0.0\\r\\n`) with no blank
line after it. A block is decoded only once it is complete, so a multi-byte UTF-8
character split across TCP reads survives (panoramisk decodes every read on its own and
drops such characters). Garbage never stops the stream: lines before the first
`Event:`/`Response:` of a block, and blocks without one, come out as `Malformed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

TERMINATOR = b"\r\n\r\n"
# A block this large without a blank line is not AMI: drop it instead of buffering forever.
MAX_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Banner:
    text: str  # "Asterisk Call Manager/11.0.0"

    @property
    def version(self) -> str:
        return self.text.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class Message:
    """Headers in wire order; `get` gives the first value, `get_all` every value of a key
    that may repeat (`Output:`, `ChanVariable:`, `Variable:`)."""

    headers: dict[str, str]
    # Second and later values of repeated keys (rare: kept apart so lookups stay a dict get).
    repeated: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]

    def __contains__(self, key: object) -> bool:
        return key in self.headers

    def get_all(self, key: str) -> list[str]:
        first = self.headers.get(key)
        if first is None:
            return []
        return [first, *self.repeated.get(key, ())]

    def items(self) -> Iterator[tuple[str, str]]:
        for key, value in self.headers.items():
            yield key, value
            for extra in self.repeated.get(key, ()):
                yield key, extra

    @property
    def action_id(self) -> str | None:
        return self.headers.get("ActionID")

    def variables(self) -> dict[str, str]:
        """`ChanVariable: NAME=value` headers (CoreShowChannel, Originate replies)."""
        out: dict[str, str] = {}
        for item in self.get_all("ChanVariable"):
            name, _, value = item.partition("=")
            out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class Response(Message):
    @property
    def status(self) -> str:  # Success | Error | Goodbye | Follows
        return self.headers["Response"]

    @property
    def ok(self) -> bool:
        return self.headers["Response"] in ("Success", "Goodbye", "Follows")

    @property
    def message(self) -> str:
        return self.headers.get("Message", "")


@dataclass(frozen=True, slots=True)
class Event(Message):
    @property
    def name(self) -> str:
        return self.headers["Event"]


@dataclass(frozen=True, slots=True)
class Action(Message):
    """What a client sends (only a server, such as the simulator, parses these)."""

    @property
    def name(self) -> str:
        return self.headers["Action"]


@dataclass(frozen=True, slots=True)
class Malformed:
    raw: bytes
    reason: str


AmiMessage = Banner | Response | Event | Action | Malformed


_STARTS = ("Event: ", "Response: ", "Action: ")


def _build(lines: list[str], start: int) -> Response | Event | Action:
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for line in lines[start:] if start else lines:
        key, sep, value = line.partition(": ")
        if not sep:
            # "Key:" with an empty value has no space after the colon.
            if line.endswith(":"):
                key, value = line[:-1], ""
            else:
                continue  # a stray line inside a valid block: skip it, keep the block
        if key in headers:
            repeated.setdefault(key, []).append(value)
        else:
            headers[key] = value
    head = lines[start]
    if head.startswith("Event"):
        return Event(headers, repeated)
    if head.startswith("Action"):
        return Action(headers, repeated)
    return Response(headers, repeated)


class AmiParser:
    """feed(bytes) -> complete messages, in order. One parser per connection."""

    __slots__ = ("_banner_pending", "_buf", "malformed")

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buf = b""
        self._banner_pending = expect_banner
        self.malformed = 0  # how many Malformed were reported (for status pages)

    def feed(self, data: bytes) -> list[AmiMessage]:
        buf = self._buf + data if self._buf else data
        out: list[AmiMessage] = []
        if self._banner_pending:
            end = buf.find(b"\r\n")
            if end < 0:
                self._buf = buf
                return out
            self._banner_pending = False
            line = buf[:end]
            if b":" in line:
                # No banner (a client side of the simulator, or a proxy): it is a header.
                pass
            else:
                out.append(Banner(line.decode("utf-8", "replace")))
                buf = buf[end + 2 :]
        pos = 0
        find = buf.find
        while True:
            end = find(TERMINATOR, pos)
            if end < 0:
                break
            block = buf[pos:end]
            pos = end + 4
            if block:
                self._block(block, out)
        rest = buf[pos:] if pos else buf
        if len(rest) > MAX_BLOCK:
            out.append(Malformed(rest[:200], "block too long without a blank line"))
            self.malformed += 1
            rest = b""
        self._buf = rest
        return out

    def _block(self, block: bytes, out: list[AmiMessage]) -> None:
        text = block.decode("utf-8", "replace")
        # Stray blank-line noise (e.g. "\r\n\r\n\r\n") leaves a leading "\r\n".
        lines = text.lstrip("\r\n").split("\r\n")
        first = lines[0]
        if first.startswith(_STARTS):
            out.append(_build(lines, 0))
            return
        # Garbage before a real message (a block glued to junk): skip to its first line.
        for i, line in enumerate(lines):
            if line.startswith(_STARTS):
                out.append(Malformed("\r\n".join(lines[:i]).encode(), "garbage before message"))
                self.malformed += 1
                out.append(_build(lines, i))
                return
        out.append(Malformed(block[:200], "no Event, Response or Action header"))
        self.malformed += 1

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a message."""
        return len(self._buf)


def parse_all(data: bytes, *, expect_banner: bool = True) -> list[AmiMessage]:
    return AmiParser(expect_banner=expect_banner).feed(data)


def encode_action(action: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """One action on the wire. Values must not carry CR/LF (header injection)."""
    parts = [f"Action: {action}\r\n"]
    for key, value in fields:
        if "\r" in value or "\n" in value or "\r" in key or "\n" in key:
            raise ValueError(f"AMI header {key!r} must be a single line")
        parts.append(f"{key}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode()


def encode_message(pairs: Iterable[tuple[str, str]]) -> bytes:
    """A response or event as a server writes it (the simulator)."""
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode()
