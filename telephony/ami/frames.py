"""Incremental AMI wire parser: bytes in, typed messages out. Pure, no I/O.

AMI is line based: `Key: Value\\r\\n` headers, a blank line ends a message. The first
line of a connection is the banner (`Asterisk Call Manager/11.0.0\\r\\n`) with no blank
line after it. A block is decoded only once it is complete, so a multi-byte UTF-8
character split across TCP reads survives (panoramisk decodes every read on its own and
drops such characters). Garbage never stops the stream: lines before the first
`Event:`/`Response:` of a block, and blocks without one, come out as `Malformed`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Self

TERMINATOR = b"\r\n\r\n"
# A block this large without a blank line is not AMI: drop it instead of buffering forever.
MAX_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Banner:
    text: str  # "Asterisk Call Manager/11.0.0"

    @property
    def version(self) -> str:
        return self.text.rpartition("/")[2]


class Message:
    """Headers in wire order; `get` gives the first value, `get_all` every value of a key
    that may repeat (`Output:`, `ChanVariable:`, `Variable:`).

    Built from the wire, a message keeps its text and splits it into headers only when
    asked: most of Asterisk's events (VarSet, Newexten, DeviceStateChange...) are dropped
    by name alone, and the header split is what a Python reader spends its time on.
    """

    __slots__ = ("_first", "_headers", "_raw", "_repeated")

    def __init__(
        self,
        headers: dict[str, str] | None = None,
        repeated: dict[str, list[str]] | None = None,
        *,
        raw: str | None = None,
        first: str | None = None,
    ) -> None:
        self._raw = raw
        self._first = first  # the first header's value, once read (the parser may know it)
        self._headers = headers if headers is not None or raw is not None else {}
        # Second and later values of repeated keys (rare: kept apart so lookups stay a
        # dict get).
        self._repeated = repeated if repeated is not None else ({} if raw is None else None)

    @classmethod
    def wire(cls, raw: str, first: str | None = None) -> Self:
        """`cls(raw=raw, first=first)`, built without `__init__`'s keywords, which cost
        more than the rest of a message read off the wire (once per message)."""
        message = object.__new__(cls)
        message._raw, message._first, message._headers, message._repeated = raw, first, None, None
        return message

    @property
    def headers(self) -> dict[str, str]:
        headers = self._headers
        if headers is None:
            headers = self._split()
        return headers

    @property
    def repeated(self) -> dict[str, list[str]]:
        if self._repeated is None:
            self._split()
        assert self._repeated is not None
        return self._repeated

    @property
    def raw(self) -> str:
        """The message as received (header lines joined by CRLF, no blank line)."""
        if self._raw is None:
            self._raw = "\r\n".join(f"{k}: {v}" for k, v in self.items())
        return self._raw

    def _split(self) -> dict[str, str]:
        headers, self._repeated = _split_headers(self._raw or "")
        self._headers = headers
        return headers

    def get(self, key: str, default: str = "") -> str:
        headers = self._headers
        if headers is not None:
            return headers.get(key, default)
        # Not split yet: a few lookups by search are cheaper than splitting every header.
        return header(self._raw or "", key, default)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]

    def __contains__(self, key: object) -> bool:
        return key in self.headers

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Message)
        return self.headers == other.headers and self.repeated == other.repeated

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.headers!r})"

    def get_all(self, key: str) -> list[str]:
        first = self.headers.get(key)
        if first is None:
            return []
        return [first, *self.repeated.get(key, ())]

    def items(self) -> Iterator[tuple[str, str]]:
        repeated = self.repeated
        for key, value in self.headers.items():
            yield key, value
            for extra in repeated.get(key, ()):
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

    def _first_value(self, prefix_len: int, key: str) -> str:
        # Kept: an event's name is asked for by every reader it passes on the way in.
        first = self._first
        if first is None:
            if self._headers is not None:
                first = self._headers[key]
            else:
                raw = self._raw or ""
                end = raw.find("\r\n")
                first = raw[prefix_len:] if end < 0 else raw[prefix_len:end]
            self._first = first
        return first


class Response(Message):
    __slots__ = ()

    @property
    def status(self) -> str:  # Success | Error | Goodbye | Follows
        return self._first_value(10, "Response")

    @property
    def ok(self) -> bool:
        return self.status in ("Success", "Goodbye", "Follows")

    @property
    def message(self) -> str:
        return self.headers.get("Message", "")


class Event(Message):
    __slots__ = ()

    @property
    def name(self) -> str:
        """Read off the first line without splitting the rest."""
        name = self._first
        return name if name is not None else self._first_value(7, "Event")


class Action(Message):
    """What a client sends (only a server, such as the simulator, parses these)."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self._first_value(8, "Action")


@dataclass(frozen=True, slots=True)
class Malformed:
    raw: bytes
    reason: str


AmiMessage = Banner | Response | Event | Action | Malformed


class Interest:
    """Which events a reader uses, told from a block's first line (a VarSet's from its
    `Variable:` line) before any Event is built: `AmiParser.stream` drops the rest unread.

    - `names`: events always used;
    - `variables`: the VarSet variables used, without the leading `_` of inheritance.
      VarSet (half of Asterisk's events) is told by its variable alone, unless "VarSet"
      is in `names`;
    - `all_while`: the other events are used too while this container is not empty (the
      translator's calls whose start is held), those `while_held(name, raw)` admits (all
      by default). The reader owns both and may change them between two events: they are
      asked anew for each block.
    """

    # The one event told by its block rather than by its name (unless it is in `names`),
    # half of Asterisk's events: `admits` knows it by name and asks `reads_variable`;
    # `AmiParser.stream` knows it by its first line and runs the same test inline.
    VARSET = "VarSet"
    VARSET_LINE = f"Event: {VARSET}"

    __slots__ = (
        "all_while",
        "names",
        "read_lines",
        "unread_lines",
        "variable_at",
        "variables",
        "while_held",
    )

    def __init__(
        self,
        names: Iterable[str],
        variables: Iterable[str] = (),
        *,
        all_while: Collection[object] = (),
        while_held: Callable[[str, str], bool] = lambda name, raw: True,
    ) -> None:
        self.names = frozenset(names)
        self.variables = frozenset(variables)
        self.all_while = all_while
        self.while_held = while_held
        # What `AmiParser.stream` tells of a block by its first line alone (a dict or set
        # lookup, where a name's cut and a call to `admits` cost more than the rest of a
        # dropped event): the events of `names` (line -> name), and those `admits` dropped
        # by name while no start was held (the parser learns them, `note_unread`;
        # Asterisk has a few hundred).
        self.read_lines = {f"Event: {name}": name for name in self.names}
        self.unread_lines: set[str] = set()
        # The variable's line, matched where it starts (`variable_at(raw, at)`, `at` the
        # CRLF before it; no header split): any number of underscores before the name. A
        # never-matching pattern when no variable is used.
        alternatives = "|".join(re.escape(v) for v in sorted(self.variables)) or "(?!)"
        self.variable_at = re.compile(
            rf"{re.escape(_VARIABLE_LINE)}_*(?:{alternatives})(?:\r\n|$)"
        ).match

    def admits(self, name: str, raw: str) -> bool:
        """Whether an event named `name`, whose header lines are `raw`, is used. A query
        only: while `all_while` is empty, a no to any event but a VarSet is told by its
        name alone, which the parser learns (`note_unread`)."""
        if name in self.names:
            return True
        if name == self.VARSET:
            return self.reads_variable(raw)
        if self.all_while:
            return self.while_held(name, raw)
        return False

    def note_unread(self, line: str) -> None:
        """`admits` said no by name alone to the event of this first line (`Event: Name`):
        `AmiParser.stream` drops the next ones by their line."""
        if len(self.unread_lines) < _UNREAD_LINES:
            self.unread_lines.add(line)

    def reads_variable(self, raw: str) -> bool:
        """Whether a VarSet, whose header lines are `raw`, sets a variable used."""
        # A VarSet has one Variable line, next to last as Asterisk writes it: one scan back
        # from the end finds it, where a scan for each name reads the whole block.
        at = raw.rfind(_VARIABLE_LINE)
        return at >= 0 and self.variable_at(raw, at) is not None

    def including(self, names: Iterable[str]) -> Interest:
        """This interest and another reader's events (the same `all_while`, `while_held`)."""
        return Interest(
            self.names | frozenset(names),
            self.variables,
            all_while=self.all_while,
            while_held=self.while_held,
        )


# Enough for every event Asterisk has; garbage beyond it is only told the slower way.
_UNREAD_LINES = 1024
_VARIABLE_LINE = "\r\nVariable: "

_KINDS: dict[str, type[Response | Event | Action]] = {
    "Event: ": Event,
    "Response: ": Response,
    "Action: ": Action,
}
_STARTS = tuple(_KINDS)


_BY_INITIAL = {prefix[0]: kind for prefix, kind in _KINDS.items()}
_NEEDLES: dict[str, str] = {}


def _needle(key: str) -> str:
    needle = _NEEDLES[key] = f"\r\n{key}: "
    return needle


def _split_headers(raw: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every header line: the first value of each key, and the later ones apart."""
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for line in raw.split("\r\n"):
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
    return headers, repeated


def header(raw: str, key: str, default: str = "") -> str:
    """`Message.get` on a message's header lines, for a reader that has not built one."""
    needle = _NEEDLES.get(key) or _needle(key)
    at = raw.find(needle)
    if at >= 0:
        start = at + len(needle)
    elif raw.startswith(needle[2:]):
        start = len(needle) - 2
    elif needle[1:-1] in raw:
        # "Key:" without the space (an empty value): let the split decide.
        return _split_headers(raw)[0].get(key, default)
    else:
        return default
    end = raw.find("\r\n", start)
    return raw[start:] if end < 0 else raw[start:end]


def _typed(block: str) -> Response | Event | Action:
    # Only called on blocks that start with one of _STARTS: the initial tells them apart.
    return _BY_INITIAL[block[0]].wire(block)


class AmiParser:
    """feed(bytes) -> complete messages, in order. One parser per connection."""

    __slots__ = ("_banner_pending", "_buf", "dropped", "malformed")

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buf = b""
        self._banner_pending = expect_banner
        self.malformed = 0  # how many Malformed were reported (for status pages)
        self.dropped = 0  # events `stream` left unbuilt (its Interest did not admit them)

    def feed(self, data: bytes) -> list[AmiMessage]:
        out: list[AmiMessage] = []
        text, tail = self._take(data, out)
        if text is not None:
            starts = _STARTS
            for block in text.split("\r\n\r\n"):
                if block.startswith(starts):
                    out.append(_typed(block))
                elif block:
                    self._odd(block, out)
        if tail is not None:
            out.append(tail)
        return out

    def stream(self, data: bytes, interest: Interest) -> Iterator[AmiMessage]:
        """`feed`, one message at a time, without the events `interest` does not admit:
        those are told apart on their first line and only counted (`dropped`). Lazy, so
        that the reader may change `interest.all_while` between two events of one read."""
        head: list[AmiMessage] = []
        text, tail = self._take(data, head)
        yield from head
        if text is not None:
            starts, admits, dropped = _STARTS, interest.admits, 0
            read, unread = interest.read_lines, interest.unread_lines
            # A VarSet, half of the blocks, is told first and inline (unless all are read).
            varset = None if interest.VARSET in interest.names else interest.VARSET_LINE
            variable = interest.variable_at
            for block in text.split("\r\n\r\n"):
                first = block.partition("\r\n")[0]
                if first == varset:
                    at = block.rfind(_VARIABLE_LINE)
                    if at >= 0 and variable(block, at) is not None:
                        yield Event.wire(block, interest.VARSET)
                    else:
                        dropped += 1
                    continue
                name = read.get(first)
                if name is not None:
                    yield Event.wire(block, name)
                elif first in unread and not interest.all_while:
                    dropped += 1
                elif first.startswith("Event: "):
                    name = first[7:]
                    if admits(name, block):
                        yield Event.wire(block, name)
                    else:
                        dropped += 1
                        if not interest.all_while:
                            interest.note_unread(first)
                elif first.startswith(starts):
                    yield _typed(block)
                elif block:
                    odd: list[AmiMessage] = []
                    self._odd(block, odd)
                    yield from odd
            self.dropped += dropped
        if tail is not None:
            yield tail

    def _take(self, data: bytes, out: list[AmiMessage]) -> tuple[str | None, Malformed | None]:
        """The text of the whole messages now buffered (None: none yet), and what to
        report after them; the banner, if this read completes it, goes to `out`."""
        buf = self._buf + data if self._buf else data
        text: str | None = None
        tail: Malformed | None = None
        if self._banner_pending:
            end = buf.find(b"\r\n")
            if end < 0:
                self._buf = buf
                return None, None
            self._banner_pending = False
            line = buf[:end]
            # No banner (the client side of a server, or a proxy): the line is a header.
            if b":" not in line:
                out.append(Banner(line.decode("utf-8", "replace")))
                buf = buf[end + 2 :]
        end = buf.rfind(TERMINATOR)
        if end >= 0:
            # Everything up to the last blank line is whole messages: one decode for the
            # lot (a character cannot straddle a blank line), then split into blocks.
            text = buf[:end].decode("utf-8", "replace")
            buf = buf[end + 4 :]
        if len(buf) > MAX_BLOCK:
            tail = Malformed(buf[:200], "block too long without a blank line")
            self.malformed += 1
            buf = b""
        self._buf = buf
        return text, tail

    def _odd(self, block: str, out: list[AmiMessage]) -> None:
        """Stray blank lines, or garbage before (or instead of) a message."""
        lines = block.lstrip("\r\n").split("\r\n")
        for i, line in enumerate(lines):
            if line.startswith(_STARTS):
                if i:
                    junk = "\r\n".join(lines[:i]).encode("utf-8", "replace")
                    out.append(Malformed(junk[:200], "garbage before message"))
                    self.malformed += 1
                out.append(_typed("\r\n".join(lines[i:])))
                return
        if lines != [""]:
            out.append(
                Malformed(
                    block.encode("utf-8", "replace")[:200], "no Event, Response or Action header"
                )
            )
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
