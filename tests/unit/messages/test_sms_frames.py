from __future__ import annotations

from crm_api.messages.notifier import SmsStatus, sms_status_data
from crm_api.messages.sms.delivery import Change, MessageState


def test_an_sms_status_frame_carries_what_its_documented_model_would() -> None:
    parts: list[dict[str, object]] = [
        {"index": 0, "message_id": "a1", "status": "delivered"},
        {"index": 1, "message_id": None, "status": "unknown"},
    ]
    for status, error in (("submitted", "an earlier try"), ("failed", "part 2: rejected")):
        change = Change(MessageState(7, 3, None, None, 11, parts, error), status)
        data = sms_status_data(change)
        assert data == SmsStatus.model_validate(data).model_dump(mode="json")
        assert data["error"] == (None if status == "submitted" else error)
