from __future__ import annotations

from crm_api.accounts.models import Role, User
from crm_api.clients.models import Client
from crm_api.messages.models import OutboxMessage
from crm_api.messages.sms.delivery import (
    MessageRow,
    PartRow,
    fold_receipts,
    message_changes,
    outcome_of,
    placed_indexes,
)
from crm_api.messages.sms.inbound import inbound_key, is_stop
from crm_api.messages.templates import render
from sms_gateway.types import DeliveryReceipt, InboundSms


def _message(status: str, parts: list[dict[str, object]] | None = None) -> OutboxMessage:
    return OutboxMessage(id=1, channel="sms", status=status, parts=parts or [])


def _parts(*statuses: str) -> list[str]:
    return list(statuses)


def test_a_message_is_delivered_when_every_part_is() -> None:
    assert outcome_of("submitted", _parts("delivered", "delivered")) == "delivered"
    assert outcome_of("submitted", _parts("delivered", "submitted")) is None
    # Not every part placed yet: a receipt for the first does not decide anything.
    assert outcome_of("sending", _parts("delivered")) is None


def test_the_first_failed_part_fails_the_message_and_final_states_stay() -> None:
    assert outcome_of("submitted", _parts("delivered", "expired")) == "expired"
    assert outcome_of("submitted", _parts("failed", "delivered")) == "failed"
    assert outcome_of("delivered", _parts("failed")) is None


def test_a_retry_sends_only_the_parts_not_placed() -> None:
    message = _message(
        "queued",
        [
            {"index": 0, "message_id": "a", "status": "submitted"},
            {"index": 1, "message_id": None, "status": "unknown"},
        ],
    )
    assert placed_indexes(message.parts) == {0}


def test_stop_words() -> None:
    for text in ("STOP", "stop", " Стоп ", "СТОП!", "Stop."):
        assert is_stop(text), text
    for text in ("не стоп", "STOP it please", "стопка", ""):
        assert not is_stop(text), text


def test_a_received_text_is_keyed_on_what_the_smsc_identifies_never_on_its_content() -> None:
    first = InboundSms("79161234567", "Callcard", "Да", ref="seq:a1.1:7")
    again = InboundSms("79161234567", "Callcard", "Да", ref="seq:a1.1:7")  # redelivered
    second = InboundSms("79161234567", "Callcard", "Да", ref="seq:a1.1:8")  # a new "Да"
    assert inbound_key(first) == inbound_key(again)
    assert inbound_key(first) != inbound_key(second)


def test_template_with_name_manager_and_deal_fields() -> None:
    manager = User(full_name="Ольга Менеджер", role=Role.MANAGER)
    client = Client(name="Петров Иван Сергеевич", manager=manager)
    text = render(
        "{first_name}, {deal_title}: {deal_amount}. {manager}. {unknown} {",
        client,
        {"deal_title": "Поставка", "deal_amount": "12 500 RUB"},
    )
    # A stray brace stays as written; the placeholders around it are still filled in.
    assert text == "Иван, Поставка: 12 500 RUB. Ольга Менеджер. {unknown} {"
    text = render(
        "{first_name}, {deal_title}: {deal_amount}. {manager}. {unknown}",
        client,
        {"deal_title": "Поставка", "deal_amount": "12 500 RUB"},
    )
    assert text == "Иван, Поставка: 12 500 RUB. Ольга Менеджер. {unknown}"


def test_receipts_fold_onto_parts_forward_only() -> None:
    parts = {
        "a": PartRow(1, 10, "a", "submitted"),
        "b": PartRow(2, 10, "b", "delivered"),
    }
    receipts = [
        DeliveryReceipt("a", "ENROUTE", None),
        DeliveryReceipt("a", "UNDELIV", "failed"),
        DeliveryReceipt("a", "DELIVRD", "delivered"),  # after a final state: ignored
        DeliveryReceipt("b", "UNDELIV", "failed"),  # already final
        DeliveryReceipt("zz", "DELIVRD", "delivered"),  # no such part
    ]
    assert fold_receipts(parts, receipts) == {1: "failed"}


def test_a_message_changes_only_when_its_parts_decide_it() -> None:
    def row(mid: int, status: str) -> MessageRow:
        entries = [
            {"index": 0, "message_id": f"{mid}a", "status": "submitted"},
            {"index": 1, "message_id": f"{mid}b", "status": "submitted"},
        ]
        return MessageRow(mid, status, entries, None, 1, None, None, None)

    parts = {
        1: [(0, "1a", "delivered"), (1, "1b", "delivered")],
        2: [(0, "2a", "delivered"), (1, "2b", "submitted")],
        3: [(0, "3a", "delivered"), (1, "3b", "expired")],
    }
    changes = message_changes([row(1, "submitted"), row(2, "submitted"), row(3, "sending")], parts)
    assert [(c.message.id, c.status, c.message.last_error) for c in changes] == [
        (1, "delivered", None),
        (3, "expired", "part 2: expired"),
    ]
    assert [e["status"] for e in changes[0].message.parts] == ["delivered", "delivered"]
