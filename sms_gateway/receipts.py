"""Delivery receipts: the `receipted_message_id`/`message_state` TLVs when the SMSC sends
them, else the de-facto text form `id:… sub:… dlvrd:… submit date:… done date:… stat:… err:…`."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sms_gateway.types import DeliveryReceipt

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_NETWORK_ERROR_CODE = 0x0423

ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
ESM_INTERMEDIATE = 0x20

# SMPP 3.4 §5.2.28 message_state values → the stat word of the text form
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
# stat → what it means for the message
STAT_OUTCOME = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "DELETED": "failed",
    "UNDELIV": "failed",
    "REJECTD": "rejected",
    "UNKNOWN": "failed",
    "ACCEPTD": None,  # intermediate: still on its way
    "ENROUTE": None,
}

_FIELD = re.compile(r"(id|sub|dlvrd|submit date|done date|stat|err|text):", re.IGNORECASE)


def is_receipt(esm_class: int) -> bool:
    return esm_class & ESM_TYPE_MASK in (ESM_DELIVERY_RECEIPT, ESM_INTERMEDIATE)


def parse_text(text: str) -> dict[str, str]:
    """The fields of a text receipt; values may contain spaces (`text:` always does)."""
    # split() with the name captured: [before, name, value, name, value, …] in one pass.
    pieces = _FIELD.split(text)
    return {
        name.lower(): value.strip() for name, value in zip(pieces[1::2], pieces[2::2], strict=True)
    }


def _clean_id(raw: bytes | str) -> str:
    value = raw.decode("ascii", errors="replace") if isinstance(raw, bytes) else raw
    return value.rstrip("\x00").strip()


def parse_receipt(short_message: bytes, tlvs: Mapping[int, bytes]) -> DeliveryReceipt | None:
    """None when the PDU carries no message id in either form."""
    fields = parse_text(short_message.decode("latin-1"))
    message_id = ""
    if TLV_RECEIPTED_MESSAGE_ID in tlvs:
        message_id = _clean_id(tlvs[TLV_RECEIPTED_MESSAGE_ID])
    if not message_id:
        message_id = fields.get("id", "")
    if not message_id:
        return None
    stat = fields.get("stat", "").upper()
    state = tlvs.get(TLV_MESSAGE_STATE)
    if state:
        stat = MESSAGE_STATES.get(state[0], stat or "UNKNOWN")
    if not stat:
        stat = "UNKNOWN"
    error = fields.get("err")
    if not error and TLV_NETWORK_ERROR_CODE in tlvs:
        error = tlvs[TLV_NETWORK_ERROR_CODE].hex()
    return DeliveryReceipt(
        message_id=message_id,
        stat=stat,
        outcome=STAT_OUTCOME.get(stat, "failed"),
        error=error or None,
    )


def receipt_of_state(message_id: str, message_state: int | None) -> DeliveryReceipt | None:
    """A query_sm answer as a receipt, when the state it gives is final."""
    stat = MESSAGE_STATES.get(message_state or 0)
    outcome = STAT_OUTCOME.get(stat or "")
    if stat is None or outcome is None:
        return None
    return DeliveryReceipt(message_id=message_id, stat=stat, outcome=outcome)


def format_receipt(message_id: str, stat: str, err: str = "000", submitted: str = "") -> str:
    """The text form, as SMSCs write it (used by test SMSCs and tests)."""
    dlvrd = "001" if stat == "DELIVRD" else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{submitted} "
        f"done date:{submitted} stat:{stat} err:{err} text:"
    )
