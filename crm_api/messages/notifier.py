"""The only publisher of the messages feature's frames (SMS and e-mail): what each carries,
and who gets it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import AliasChoices, Field

from crm_api.messages.models import OutboxMessage
from crm_api.messages.sms.delivery import Change
from crm_api.messages.sms.inbound import Received
from crm_api.platform.realtime.frames import Audience, Frame, FrameModel
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import ApiModel

UNMANAGED_TEXT_ROLES = ("operator", "supervisor")  # who hears of a text nobody manages yet


class MessageStatus(ApiModel):
    """An outgoing SMS or e-mail changed state (its card's communication with it)."""

    outbox_id: int
    communication_id: int | None
    client_id: int
    status: str
    error: str | None


class SmsStatus(MessageStatus):
    parts: list[dict[str, object]]


class SmsReceived(ApiModel):
    """A text from a client, on their card (a new card for an unknown number)."""

    client_id: int
    client_name: str
    communication_id: int
    from_: str | None = Field(
        validation_alias=AliasChoices("from", "from_"), serialization_alias="from"
    )
    text: str | None
    new_card: bool
    opted_out: bool  # this message turned the client's SMS off


class BulkProgress(ApiModel):
    bulk_id: int
    status: str
    total: int
    pending: int
    sent: int  # reached the SMSC
    delivered: int
    failed: int


class SmsStatusFrame(FrameModel):
    type: Literal["sms.status"] = "sms.status"
    data: SmsStatus


class SmsReceivedFrame(FrameModel):
    type: Literal["sms.received"] = "sms.received"
    data: SmsReceived


class SmsBulkProgressFrame(FrameModel):
    type: Literal["sms.bulk.progress"] = "sms.bulk.progress"
    data: BulkProgress


class SmsBulkDoneFrame(FrameModel):
    type: Literal["sms.bulk.done"] = "sms.bulk.done"
    data: BulkProgress


class EmailStatusFrame(FrameModel):
    type: Literal["email.status"] = "email.status"
    data: MessageStatus


async def sms_statuses(hub: Hub, changes: Sequence[tuple[Change, int | None]]) -> None:
    """Each (change, the client's manager): to who sent it and the card's manager, and the
    sockets watching the card; in one round trip to the bus."""
    frames = []
    kind = SmsStatusFrame.name()
    for change, manager_id in changes:
        users = frozenset(u for u in (change.message.user_id, manager_id) if u is not None)
        frames.append(
            Frame(
                type=kind,
                data=sms_status_data(change),
                audience=Audience(user_ids=users, client_id=change.message.client_id),
            )
        )
    await hub.publish_many(frames)


def sms_status_data(change: Change) -> dict[str, object]:
    """`SmsStatus`'s JSON, built directly: two frames per message make validating the
    model's fields (each part's too) a noticeable share of the SMS worker's CPU, and a
    Change's values are already of the model's types."""
    m = change.message
    return {
        "outbox_id": m.id,
        "communication_id": m.communication_id,
        "client_id": m.client_id,
        "status": change.status,
        "error": m.last_error if change.status != "submitted" else None,
        "parts": m.parts,
    }


async def email_status(
    hub: Hub, message: OutboxMessage, status: str, error: str | None, manager_id: int | None
) -> None:
    """To who sent it and the card's manager, and the sockets watching the card."""
    data = MessageStatus(
        outbox_id=message.id,
        communication_id=message.communication_id,
        client_id=message.client_id,
        status=status,
        error=error,
    )
    users = {u for u in (message.user_id, manager_id) if u is not None}
    await hub.notify(
        EmailStatusFrame.name(),
        data.model_dump(mode="json"),
        users=users,
        client_id=message.client_id,
    )


async def sms_received(hub: Hub, r: Received) -> None:
    """To the card's manager; to operators and supervisors when nobody manages it yet."""
    received = SmsReceived(
        client_id=r.client.id,
        client_name=r.client.name,
        communication_id=r.communication.id,
        from_=r.communication.details.get("from"),
        text=r.communication.body,
        new_card=r.new_card,
        opted_out=r.opted_out,
    )
    manager = r.client.manager_id
    await hub.notify(
        SmsReceivedFrame.name(),
        received.model_dump(mode="json", by_alias=True),
        users=[manager] if manager else [],
        roles=() if manager else UNMANAGED_TEXT_ROLES,
        client_id=r.client.id,
    )


async def bulk_progress(hub: Hub, progress: BulkProgress, user_id: int, *, done: bool) -> None:
    """To who sent the bulk: its counts, and once more when it is done."""
    data = progress.model_dump(mode="json")
    await hub.notify(SmsBulkProgressFrame.name(), data, users=[user_id])
    if done:
        await hub.notify(SmsBulkDoneFrame.name(), data, users=[user_id])
