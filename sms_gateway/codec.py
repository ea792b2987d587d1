"""Bytes ↔ the session's typed PDUs. smpplib builds and parses the PDU bodies; the header
and the frames of a TCP stream (several PDUs per read, or a PDU cut in two) are here."""

from __future__ import annotations

import struct
from typing import Any

import smpplib.smpp

from sms_gateway.session import (
    BindResp,
    BindTransceiver,
    Deliver,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Inbound,
    OtherPdu,
    Outbound,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)

_HEADER = struct.Struct(">IIII")
MAX_PDU = 64 * 1024  # SMPP 3.4 PDUs are far smaller; more means the stream is garbage

GENERIC_NACK = 0x80000000
QUERY_SM_RESP = 0x80000003
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
BIND_TRANSCEIVER_RESP = 0x80000009
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
_BIND_RESPS = frozenset({0x80000001, 0x80000002, BIND_TRANSCEIVER_RESP})


class FrameError(Exception):
    """The byte stream is not SMPP: the link must be dropped."""


class Frames:
    """Splits a byte stream into whole PDUs."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        buf = self._buf
        start = 0
        while len(buf) - start >= 4:
            (length,) = struct.unpack_from(">I", buf, start)
            if length < 16 or length > MAX_PDU:
                raise FrameError(f"a PDU of {length} bytes")
            if len(buf) - start < length:
                break
            frames.append(bytes(buf[start : start + length]))
            start += length
        del buf[:start]
        return frames


def _ton_npi(address: str) -> tuple[int, int]:
    # Digits are an international number; anything else an alphanumeric sender id.
    return (1, 1) if address.isdigit() else (5, 0)


def _generate(command: str, sequence: int, **fields: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, sequence=sequence, **fields)
    pdu.sequence = sequence
    return bytes(pdu.generate())


def encode(pdu: Outbound) -> bytes:
    if isinstance(pdu, SubmitSm):
        item = pdu.submit
        ton, npi = _ton_npi(item.source)
        return _generate(
            "submit_sm",
            pdu.sequence,
            source_addr_ton=ton,
            source_addr_npi=npi,
            source_addr=item.source,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=item.destination,
            esm_class=item.part.esm_class,
            data_coding=item.part.data_coding,
            registered_delivery=item.registered_delivery,
            short_message=item.part.short_message,
        )
    if isinstance(pdu, QuerySm):
        ton, npi = _ton_npi(pdu.query.source)
        return _generate(
            "query_sm",
            pdu.sequence,
            message_id=pdu.query.message_id,
            source_addr_ton=ton,
            source_addr_npi=npi,
            source_addr=pdu.query.source,
        )
    if isinstance(pdu, BindTransceiver):
        return _generate(
            "bind_transceiver",
            pdu.sequence,
            system_id=pdu.system_id,
            password=pdu.password,
            system_type=pdu.system_type,
        )
    if isinstance(pdu, DeliverSmResp):
        return _header_only(0x80000005, pdu.status, pdu.sequence, b"\0")
    if isinstance(pdu, GenericNack):
        return _header_only(GENERIC_NACK, pdu.status, pdu.sequence)
    if isinstance(pdu, EnquireLink):
        return _header_only(ENQUIRE_LINK, 0, pdu.sequence)
    if isinstance(pdu, EnquireLinkResp):
        return _header_only(ENQUIRE_LINK_RESP, 0, pdu.sequence)
    if isinstance(pdu, Unbind):
        return _header_only(UNBIND, 0, pdu.sequence)
    return _header_only(UNBIND_RESP, 0, pdu.sequence)


def _header_only(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return _HEADER.pack(16 + len(body), command_id, status, sequence) + body


def decode(frame: bytes, generation: int = 0) -> Inbound:
    """One whole PDU (from `Frames`); `generation` tags a deliver_sm with its session."""
    _length, command_id, status, sequence = _HEADER.unpack_from(frame)
    if command_id == SUBMIT_SM_RESP:
        # The body is the message id alone (absent on an error).
        raw = frame[16:].split(b"\0", 1)[0]
        return SubmitSmResp(sequence, status, raw.decode("ascii", "replace") or None)
    if command_id == DELIVER_SM:
        return _deliver_of(frame, generation)
    if command_id == ENQUIRE_LINK:
        return EnquireLink(sequence)
    if command_id == ENQUIRE_LINK_RESP:
        return EnquireLinkResp(sequence)
    if command_id == GENERIC_NACK:
        return GenericNack(sequence, status)
    if command_id == QUERY_SM_RESP:
        state = None
        if status == 0:
            pdu = smpplib.smpp.parse_pdu(frame, allow_unknown_opt_params=True)
            state = int(pdu.message_state) if pdu.message_state is not None else None
        return QuerySmResp(sequence, status, state)
    if command_id == UNBIND:
        return Unbind(sequence)
    if command_id == UNBIND_RESP:
        return UnbindResp(sequence)
    if command_id in _BIND_RESPS:
        return BindResp(sequence, status)
    return OtherPdu(sequence, command_id)


def _tlv_bytes(value: Any, size: int = 0) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return value.to_bytes(size or 1, "big")
    return str(value).encode("ascii", "replace")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00")
    return str(value or "")


def _deliver_of(frame: bytes, generation: int) -> Deliver:
    # A request: smpplib wants a sequence to start from; parse() then reads the real one.
    pdu = smpplib.smpp.parse_pdu(frame, sequence=0, allow_unknown_opt_params=True)
    tlvs: dict[int, bytes] = {}
    if getattr(pdu, "receipted_message_id", None):
        tlvs[0x001E] = _tlv_bytes(pdu.receipted_message_id)
    if getattr(pdu, "message_state", None) is not None:
        tlvs[0x0427] = _tlv_bytes(pdu.message_state, 1)
    if getattr(pdu, "network_error_code", None):
        tlvs[0x0423] = _tlv_bytes(pdu.network_error_code)
    payload = getattr(pdu, "message_payload", None)
    return Deliver(
        source=_text(pdu.source_addr),
        destination=_text(pdu.destination_addr),
        esm_class=int(pdu.esm_class or 0),
        data_coding=int(pdu.data_coding or 0),
        short_message=bytes(pdu.short_message or payload or b""),
        tlvs=tlvs,
        sequence=int(pdu.sequence),
        generation=generation,
    )
