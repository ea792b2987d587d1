from __future__ import annotations

from sms_gateway.connection import LINK_LOST, NOT_SENT, SmppConfig
from sms_gateway.gateway import summarize
from sms_gateway.receipts import (
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    is_receipt,
    parse_receipt,
    parse_text,
)
from sms_gateway.status import ESME_RINVDSTADR, ESME_RMSGQFUL, ESME_RTHROTTLED
from sms_gateway.types import PartResult
from sms_gateway.udh import Concat, Reassembler, concat_udh, split_udh

TEXT_RECEIPT = (
    b"id:0A1B2C3D sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 "
    b"stat:DELIVRD err:000 text:Hello there"
)


def test_text_receipt_fields_including_spaces_in_values() -> None:
    fields = parse_text(TEXT_RECEIPT.decode())
    assert fields["id"] == "0A1B2C3D"
    assert fields["submit date"] == "2611231200"
    assert fields["stat"] == "DELIVRD"
    assert fields["text"] == "Hello there"


def test_text_receipt_parsed() -> None:
    r = parse_receipt(TEXT_RECEIPT, {})
    assert r is not None
    assert (r.message_id, r.stat, r.outcome, r.error) == ("0A1B2C3D", "DELIVRD", "delivered", "000")


def test_tlv_receipt_wins_over_text() -> None:
    r = parse_receipt(
        b"id:WRONG stat:DELIVRD",
        {TLV_RECEIPTED_MESSAGE_ID: b"right-id\x00", TLV_MESSAGE_STATE: bytes([5])},
    )
    assert r is not None
    assert (r.message_id, r.stat, r.outcome) == ("right-id", "UNDELIV", "failed")


def test_receipt_states() -> None:
    def outcome(stat: str) -> str | None:
        r = parse_receipt(f"id:1 stat:{stat} err:0".encode(), {})
        assert r is not None
        return r.outcome

    assert outcome("EXPIRED") == "expired"
    assert outcome("REJECTD") == "rejected"
    assert outcome("ENROUTE") is None  # not final
    assert outcome("ACCEPTD") is None
    assert outcome("GARBAGE") == "failed"


def test_receipt_without_id_is_none() -> None:
    assert parse_receipt(b"stat:DELIVRD", {}) is None
    assert parse_receipt(b"hello", {}) is None


def test_esm_class_tells_receipts_from_mo() -> None:
    assert is_receipt(0x04)
    assert is_receipt(0x20)
    assert not is_receipt(0x00)
    assert not is_receipt(0x40)


def test_udh_8_and_16_bit_references() -> None:
    assert split_udh(concat_udh(9, 3, 2) + b"abc") == (Concat(9, 3, 2), b"abc")
    udh16 = bytes([6, 0x08, 4, 0x12, 0x34, 2, 1])
    assert split_udh(udh16 + b"x") == (Concat(0x1234, 2, 1), b"x")


def test_malformed_udh_keeps_the_text() -> None:
    assert split_udh(b"\x09abc") == (None, b"\x09abc")


def test_reassembly_in_any_order_and_per_sender() -> None:
    r = Reassembler()
    assert r.add("A", Concat(1, 3, 3), "c") is None
    assert r.add("B", Concat(1, 2, 1), "x") is None
    assert r.add("A", Concat(1, 3, 1), "a") is None
    assert r.add("A", Concat(1, 3, 2), "b") == "abc"
    assert r.add("B", Concat(1, 2, 2), "y") == "xy"


def test_reassembly_releases_what_arrived_after_timeout() -> None:
    r = Reassembler(timeout=10)
    r.add("A", Concat(5, 3, 1), "first ")
    r.add("A", Concat(5, 3, 3), "third")
    assert r.expired(now=0) == []
    released = r.expired(now=10**9)
    assert released == [(("A", 5, 3), "first third")]


def test_summarize_outcomes() -> None:
    ok = PartResult(0, "m1", 0)
    assert summarize([ok]).outcome == "submitted"
    throttled = summarize([ok, PartResult(1, None, ESME_RTHROTTLED)])
    assert throttled.outcome == "retry" and "ESME_RTHROTTLED" in (throttled.error or "")
    assert summarize([PartResult(0, None, ESME_RMSGQFUL)]).outcome == "retry"
    assert summarize([PartResult(0, None, LINK_LOST)]).outcome == "retry"
    assert summarize([PartResult(0, None, NOT_SENT)]).outcome == "retry"
    bad = summarize([ok, PartResult(1, None, ESME_RINVDSTADR)])
    assert bad.outcome == "failed" and "ESME_RINVDSTADR" in (bad.error or "")


def test_smpp_url() -> None:
    cfg = SmppConfig.from_url("smpp://sys%40id:p%3Ass@smsc.example:2776", window=10)
    assert (cfg.host, cfg.port, cfg.system_id, cfg.password, cfg.window) == (
        "smsc.example",
        2776,
        "sys@id",
        "p:ss",
        10,
    )
    import pytest

    with pytest.raises(ValueError):
        SmppConfig.from_url("http://x")
