"""Bytes ↔ the session's typed PDUs, and the frames of a TCP stream (several PDUs per
read, or a PDU cut in two). The PDUs of every message, submit_sm and deliver_sm, are
built and read here with struct (smpplib's generic field machinery costs more CPU than
the rest of the link together); smpplib builds and parses the rare ones (bind, query_sm)."""

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
_TLV_HEAD = struct.Struct(">HH")
MAX_PDU = 64 * 1024  # SMPP 3.4 PDUs are far smaller; more means the stream is garbage

GENERIC_NACK = 0x80000000
SUBMIT_SM = 0x00000004
QUERY_SM_RESP = 0x80000003
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
BIND_TRANSCEIVER_RESP = 0x80000009
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
_BIND_RESPS = frozenset({0x80000001, 0x80000002, BIND_TRANSCEIVER_RESP})
TLV_MESSAGE_PAYLOAD = 0x0424


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
        return _submit_sm(pdu)
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


def _submit_sm(pdu: SubmitSm) -> bytes:
    """SMPP 3.4 §4.4.1: the mandatory fields, no TLVs."""
    item = pdu.submit
    part = item.part
    ton, npi = _ton_npi(item.source)
    body = b"".join(
        (
            b"\0",  # service_type: the SMSC's default
            bytes((ton, npi)),
            item.source.encode("ascii", "replace"),
            b"\0\x01\x01",  # end of source_addr; dest_addr_ton, dest_addr_npi: international
            item.destination.encode("ascii", "replace"),
            # end of destination_addr; esm_class, protocol_id 0, priority_flag 0,
            # schedule_delivery_time and validity_period empty (at once, the SMSC's default)
            bytes((0, part.esm_class, 0, 0, 0, 0)),
            # registered_delivery, replace_if_present_flag 0, data_coding,
            # sm_default_msg_id 0, sm_length
            bytes((item.registered_delivery, 0, part.data_coding, 0, len(part.short_message))),
            part.short_message,
        )
    )
    return _HEADER.pack(16 + len(body), SUBMIT_SM, 0, pdu.sequence) + body


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


def _deliver_of(frame: bytes, generation: int) -> Deliver:
    """SMPP 3.4 §4.6.1: the fields a Deliver keeps, and every TLV as raw bytes; the text
    is short_message, or the message_payload TLV when short_message is empty."""
    try:
        at = frame.index(0, 16) + 3  # past service_type, source_addr_ton and _npi
        end = frame.index(0, at)
        source = frame[at:end].decode("ascii", "replace")
        at = end + 3  # past the NUL, dest_addr_ton and _npi
        end = frame.index(0, at)
        destination = frame[at:end].decode("ascii", "replace")
        esm_class = frame[end + 1]
        at = frame.index(0, end + 4) + 1  # past protocol_id, priority_flag: the two times
        at = frame.index(0, at) + 1
        data_coding = frame[at + 2]
        length = frame[at + 4]
        at += 5
        short_message = frame[at : at + length]
        at += length
        tlvs: dict[int, bytes] = {}
        while at + 4 <= len(frame):
            tag, size = _TLV_HEAD.unpack_from(frame, at)
            tlvs[tag] = frame[at + 4 : at + 4 + size]
            at += 4 + size
    except (ValueError, IndexError) as e:
        raise FrameError("a deliver_sm cut short") from e
    if at != len(frame):
        raise FrameError("a deliver_sm cut short")
    _length, _command, _status, sequence = _HEADER.unpack_from(frame)
    return Deliver(
        source=source,
        destination=destination,
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message or tlvs.get(TLV_MESSAGE_PAYLOAD, b""),
        tlvs=tlvs,
        sequence=sequence,
        generation=generation,
    )
