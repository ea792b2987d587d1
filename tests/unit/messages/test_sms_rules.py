from __future__ import annotations

from datetime import UTC, datetime

from crm_api.accounts.models import Role, User
from crm_api.clients.models import Client
from crm_api.messages.models import OutboxMessage
from crm_api.messages.sms.delivery import outcome_of, placed_indexes
from crm_api.messages.sms.inbound import is_stop, receipt_key
from crm_api.messages.templates import render
from sms_gateway.types import InboundSms


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


def test_redelivered_text_gets_the_same_key_a_new_one_does_not() -> None:
    sms = InboundSms("79161234567", "Callcard", "Привет")
    t = datetime(2026, 11, 23, 18, 0, 5, tzinfo=UTC)
    assert receipt_key(sms, t) == receipt_key(sms, t.replace(second=50))
    assert receipt_key(sms, t) != receipt_key(InboundSms("79161234567", "Callcard", "Пока"), t)


def test_template_with_name_manager_and_deal_fields() -> None:
    manager = User(full_name="Ольга Менеджер", role=Role.MANAGER)
    client = Client(name="Петров Иван Сергеевич", manager=manager)
    text = render(
        "{first_name}, {deal_title}: {deal_amount}. {manager}. {unknown} {",
        client,
        {"deal_title": "Поставка", "deal_amount": "12 500 RUB"},
    )
    assert text == "{first_name}, {deal_title}: {deal_amount}. {manager}. {unknown} {"  # stray {
    text = render(
        "{first_name}, {deal_title}: {deal_amount}. {manager}. {unknown}",
        client,
        {"deal_title": "Поставка", "deal_amount": "12 500 RUB"},
    )
    assert text == "Иван, Поставка: 12 500 RUB. Ольга Менеджер. {unknown}"
