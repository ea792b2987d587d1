"""Text → SMS parts: GSM 03.38 (7-bit alphabet, one septet per octet as SMPP sends it
with data_coding 0) when every character fits, else UCS-2; long texts are split into
concatenated parts, each led by a UDH (8-bit reference)."""

from __future__ import annotations

from dataclasses import dataclass

from sms_gateway.udh import concat_udh

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_BASIC_INDEX = {ch: i for i, ch in enumerate(GSM7_BASIC) if ch != "\x1b"}
_EXT_REVERSE = {v: k for k, v in GSM7_EXT.items()}

DC_DEFAULT = 0x00  # SMSC default alphabet (GSM 03.38)
DC_UCS2 = 0x08
ESM_UDHI = 0x40

# Octets per single message; septets count as octets because SMPP carries them unpacked.
SINGLE_GSM7 = 160
PART_GSM7 = 153  # 160 - 7 septets of UDH
SINGLE_UCS2 = 70
PART_UCS2 = 67  # (140 - 6 octets of UDH) / 2


@dataclass(frozen=True, slots=True)
class Part:
    short_message: bytes  # UDH included when esm_class has UDHI
    data_coding: int
    esm_class: int


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC_INDEX or ch in GSM7_EXT for ch in text)


def encode_gsm7(text: str) -> bytes:
    out = bytearray()
    for ch in text:
        if ch in GSM7_EXT:
            out += bytes((0x1B, GSM7_EXT[ch]))
        else:
            out.append(_BASIC_INDEX[ch])
    return bytes(out)


def decode_gsm7(data: bytes) -> str:
    out: list[str] = []
    escape = False
    for octet in data:
        if escape:
            out.append(_EXT_REVERSE.get(octet, "?"))
            escape = False
        elif octet == 0x1B:
            escape = True
        elif octet < len(GSM7_BASIC):
            out.append(GSM7_BASIC[octet])
        else:
            out.append("?")
    return "".join(out)


def _split_gsm7(text: str, limit: int) -> list[bytes]:
    # An escape pair must not be cut in two, so split on characters, not octets.
    chunks: list[bytes] = []
    current = bytearray()
    for ch in text:
        encoded = encode_gsm7(ch)
        if len(current) + len(encoded) > limit:
            chunks.append(bytes(current))
            current = bytearray()
        current += encoded
    if current or not chunks:
        chunks.append(bytes(current))
    return chunks


def _split_ucs2(text: str, limit: int) -> list[bytes]:
    # Count UTF-16 code units and keep surrogate pairs (emoji) within one part.
    chunks: list[bytes] = []
    current = bytearray()
    for ch in text:
        encoded = ch.encode("utf-16-be")
        if len(current) + len(encoded) > limit * 2:
            chunks.append(bytes(current))
            current = bytearray()
        current += encoded
    if current or not chunks:
        chunks.append(bytes(current))
    return chunks


def make_parts(text: str, reference: int) -> list[Part]:
    """The parts of one message; `reference` (0..255) ties the parts together on the phone."""
    if is_gsm7(text):
        coding, single, split = DC_DEFAULT, SINGLE_GSM7, _split_gsm7
        whole = encode_gsm7(text)
        fits = len(whole) <= single
        chunks = [whole] if fits else split(text, PART_GSM7)
    else:
        coding = DC_UCS2
        whole = text.encode("utf-16-be")
        fits = len(whole) <= SINGLE_UCS2 * 2
        chunks = [whole] if fits else _split_ucs2(text, PART_UCS2)
    if len(chunks) == 1:
        return [Part(chunks[0], coding, 0)]
    if len(chunks) > 255:
        raise ValueError("message too long: more than 255 parts")
    total = len(chunks)
    return [
        Part(concat_udh(reference & 0xFF, total, i + 1) + chunk, coding, ESM_UDHI)
        for i, chunk in enumerate(chunks)
    ]


def decode_text(data: bytes, data_coding: int) -> str:
    if data_coding == DC_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if data_coding in (0x03, 0x04):  # Latin-1 / 8-bit data shown as Latin-1
        return data.decode("latin-1")
    if data_coding == DC_DEFAULT:
        return decode_gsm7(data)
    return data.decode("utf-8", errors="replace")
