"""User Data Header: concatenation (8- and 16-bit references) and reassembly of
multi-part mobile-originated messages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08


@dataclass(frozen=True, slots=True)
class Concat:
    reference: int
    total: int
    seq: int


def concat_udh(reference: int, total: int, seq: int) -> bytes:
    return bytes((0x05, IEI_CONCAT_8, 0x03, reference & 0xFF, total, seq))


def split_udh(payload: bytes) -> tuple[Concat | None, bytes]:
    """(concatenation info if any, the text octets after the UDH). A malformed header
    is kept as text rather than losing the message."""
    if not payload:
        return None, payload
    length = payload[0]
    if length + 1 > len(payload):
        return None, payload
    header, rest = payload[1 : length + 1], payload[length + 1 :]
    concat = None
    i = 0
    while i + 2 <= len(header):
        iei, ie_len = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + ie_len]
        if len(value) != ie_len:
            return None, payload
        if iei == IEI_CONCAT_8 and ie_len == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == IEI_CONCAT_16 and ie_len == 4:
            concat = Concat((value[0] << 8) | value[1], value[2], value[3])
        i += 2 + ie_len
    return concat, rest


@dataclass
class _Pending:
    total: int
    parts: dict[int, str] = field(default_factory=dict)
    first_seen: float = field(default_factory=time.monotonic)


Key = tuple[str, int, int]  # sender, reference, total


def key_of(sender: str, concat: Concat) -> Key:
    return (sender, concat.reference, concat.total)


class Reassembler:
    """Collects parts keyed by (sender, reference). A message whose parts stop coming is
    released as what arrived after `timeout` seconds, so nothing is silently dropped."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout
        self._pending: dict[Key, _Pending] = {}

    def add(self, sender: str, concat: Concat, text: str) -> str | None:
        key = key_of(sender, concat)
        pending = self._pending.setdefault(key, _Pending(concat.total))
        pending.parts[concat.seq] = text
        if len(pending.parts) < pending.total:
            return None
        del self._pending[key]
        return "".join(pending.parts[i] for i in sorted(pending.parts))

    def expired(self, now: float | None = None) -> list[tuple[Key, str]]:
        now = time.monotonic() if now is None else now
        out = []
        for key, pending in list(self._pending.items()):
            if now - pending.first_seen >= self.timeout:
                del self._pending[key]
                out.append((key, "".join(pending.parts[i] for i in sorted(pending.parts))))
        return out
