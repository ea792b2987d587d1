"""Bytes ↔ typed PDUs: whole PDUs out of any cut of the stream, and what smpplib (a
second implementation) reads back from what we write."""

from __future__ import annotations

import pytest
import smpplib.smpp

from sms_gateway.codec import FrameError, Frames, decode, encode
from sms_gateway.encoding import make_parts
from sms_gateway.session import (
    Deliver,
    DeliverSmResp,
    EnquireLink,
    OtherPdu,
    Query,
    QuerySm,
    Submit,
    SubmitSm,
    SubmitSmResp,
)


def _submit_sm_resp(sequence: int, message_id: str) -> bytes:
    pdu = smpplib.smpp.make_pdu("submit_sm_resp", message_id=message_id)
    pdu.sequence = sequence
    return bytes(pdu.generate())


def test_frames_come_whole_from_any_cut_of_the_stream() -> None:
    stream = _submit_sm_resp(1, "a1") + encode(EnquireLink(2)) + _submit_sm_resp(3, "c3")
    for cut in range(1, len(stream)):
        frames = Frames()
        got = frames.feed(stream[:cut]) + frames.feed(stream[cut:])
        assert [decode(f) for f in got] == [
            SubmitSmResp(1, 0, "a1"),
            EnquireLink(2),
            SubmitSmResp(3, 0, "c3"),
        ]


def test_a_stream_that_is_not_smpp_is_refused() -> None:
    with pytest.raises(FrameError):
        Frames().feed(b"HTTP/1.1 200 OK\r\n")


def test_a_submit_sm_reads_back_in_smpplib_as_written() -> None:
    (part,) = make_parts("Привет", 7)
    wire = encode(SubmitSm(42, Submit("79161234567", part, "Callcard", lambda *_: None)))
    pdu = smpplib.smpp.parse_pdu(wire, sequence=0)
    assert pdu.command == "submit_sm" and pdu.sequence == 42
    assert pdu.destination_addr == b"79161234567" and pdu.source_addr == b"Callcard"
    assert pdu.source_addr_ton == 5 and pdu.data_coding == part.data_coding
    assert pdu.short_message == part.short_message and pdu.registered_delivery == 1
    query = encode(QuerySm(43, Query("abc", "79001112233", lambda *_: None)))
    parsed = smpplib.smpp.parse_pdu(query, sequence=0)
    assert parsed.message_id == b"abc" and parsed.source_addr_ton == 1


def test_a_deliver_sm_decodes_with_its_receipt_tlvs_and_its_answer_encodes() -> None:
    pdu = smpplib.smpp.make_pdu(
        "deliver_sm",
        sequence=9,
        source_addr="79161234567",
        destination_addr="Callcard",
        esm_class=0x04,
        short_message=b"id:X1 stat:DELIVRD",
        receipted_message_id="X1",
        message_state=2,
    )
    pdu.sequence = 9
    got = decode(bytes(pdu.generate()), generation=4)
    assert isinstance(got, Deliver)
    assert (got.source, got.sequence, got.generation, got.esm_class) == ("79161234567", 9, 4, 4)
    assert got.tlvs[0x001E].rstrip(b"\0") == b"X1" and got.tlvs[0x0427] == b"\x02"
    answer = smpplib.smpp.parse_pdu(encode(DeliverSmResp(9, 0)), sequence=0)
    assert answer.command == "deliver_sm_resp" and answer.sequence == 9


def test_each_part_of_a_long_message_reads_back_in_smpplib_with_its_udh() -> None:
    parts = make_parts("Ваш заказ готов к выдаче. " * 6, 200)
    assert len(parts) > 1
    for i, part in enumerate(parts):
        wire = encode(SubmitSm(i, Submit("79161234567", part, "79001112233", lambda *_: None)))
        pdu = smpplib.smpp.parse_pdu(wire, sequence=0)
        assert (pdu.esm_class, pdu.source_addr_ton, pdu.dest_addr_ton) == (0x40, 1, 1)
        assert pdu.short_message == part.short_message


def test_a_deliver_sm_with_its_text_in_message_payload() -> None:
    pdu = smpplib.smpp.make_pdu(
        "deliver_sm",
        sequence=3,
        source_addr="79161234567",
        destination_addr="Callcard",
        data_coding=8,
        short_message=b"",
        message_payload="Да, жду".encode("utf-16-be"),
        receipted_message_id="M-77",
    )
    pdu.sequence = 3
    got = decode(bytes(pdu.generate()))
    assert isinstance(got, Deliver)
    assert (got.destination, got.data_coding) == ("Callcard", 8)
    assert got.short_message.decode("utf-16-be") == "Да, жду"
    assert got.tlvs[0x001E].rstrip(b"\0") == b"M-77"


def test_a_deliver_sm_cut_short_drops_the_link() -> None:
    pdu = smpplib.smpp.make_pdu(
        "deliver_sm", sequence=1, source_addr="7916", destination_addr="C", short_message=b"hi"
    )
    wire = bytes(pdu.generate())
    for cut in (20, len(wire) - 1):
        short = wire[:cut]
        with pytest.raises(FrameError):
            decode(len(short).to_bytes(4, "big") + short[4:])


def test_a_pdu_of_no_interest_is_typed_as_other() -> None:
    wire = bytes.fromhex("00000010000001030000000000000005")  # data_sm, an unused request
    assert decode(wire) == OtherPdu(5, 0x103)
