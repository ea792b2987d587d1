"""SMS and e-mail from the card, bulk SMS, and where a message stands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients import phones
from crm_api.clients import service as clients_domain
from crm_api.clients.models import Client
from crm_api.messages import service as messages
from crm_api.messages.models import BulkSend, OutboxMessage
from crm_api.messages.outbox import EmailNotConfigured, SmsNotConfigured, enqueue
from crm_api.messages.schemas import (
    BulkSmsIn,
    BulkSmsPublic,
    EmailSendIn,
    MessagePublic,
    SmsSendIn,
)
from crm_api.messages.sms import bulk as bulk_sends
from crm_api.messages.templates import SMS_MAX_CHARS, fits_sms, render
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.errors import InvalidInput
from crm_api.platform.links import Outbox
from crm_api.platform.schemas import Id

router = APIRouter(tags=["messages"])
# An empty key is a client's bug (it would make every send after the first a repeat): 422.
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=100)
]


def _public(m: OutboxMessage) -> MessagePublic:
    return MessagePublic(
        id=m.id,
        channel=m.channel,
        client_id=m.client_id,
        communication_id=m.communication_id,
        bulk_id=m.bulk_id,
        to=m.to_address,
        subject=m.subject,
        body=m.body,
        status=m.status,
        attempts=m.attempts,
        last_error=m.last_error,
        parts=list(m.parts),
        created_at=m.created_at,
        submitted_at=m.submitted_at,
        final_at=m.final_at,
    )


async def _card(session: SessionDep, user: User, client_id: Id) -> Client:
    client = await clients_domain.get_for(session, user, client_id)
    # The template needs the manager's name.
    await session.refresh(client, ["manager", "phones", "emails"])
    return client


def _require_sms(services: ServicesDep) -> None:
    if not services.link_status.configured("smsc"):
        raise SmsNotConfigured("SMS is not set up on this server (CALLCARD_SMPP_URL)")


def _require_email(services: ServicesDep) -> None:
    if not services.link_status.configured("email"):
        raise EmailNotConfigured("e-mail is not set up on this server (CALLCARD_SMTP_HOST)")


def _wake(outbox: Outbox | None) -> None:
    if outbox is not None:
        outbox.wake.set()


@router.post(
    "/clients/{client_id}/sms",
    status_code=202,
    operation_id="send_sms",
    responses={200: {"model": MessagePublic, "description": "sent before (Idempotency-Key)"}},
)
async def send_sms(
    client_id: Id,
    body: SmsSendIn,
    response: Response,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.MESSAGES_SEND)],
    idempotency_key: IdempotencyKey = None,
) -> MessagePublic:
    """Queues an SMS to one of the client's phones. A repeated Idempotency-Key returns the
    first message (200) instead of sending again."""
    _require_sms(services)
    client = await _card(session, user, client_id)
    region = services.settings.default_region
    if body.phone:
        wanted = phones.try_normalize(body.phone, region)
        phone = next((p.e164 for p in client.phones if p.e164 == wanted), None)
        if phone is None:
            raise InvalidInput("phone", "not a phone of this client")
    else:
        phone = next((p.e164 for p in client.phones if phones.is_mobile(p.e164)), None)
        if phone is None:
            raise InvalidInput("phone", "the client has no mobile phone")
    text = render(body.text, client, await messages.template_fields(session, client, body.deal_id))
    if not fits_sms(text):
        raise InvalidInput("text", f"longer than {SMS_MAX_CHARS} characters once filled in")
    message, created = await enqueue(
        session,
        channel="sms",
        client=client,
        user=user,
        to_address=phone,
        body=text,
        idempotency_key=idempotency_key,
    )
    await session.commit()
    if not created:
        response.status_code = 200
    _wake(services.links.sms_outbox)
    return _public(message)


@router.post("/clients/{client_id}/email", status_code=202, operation_id="send_email")
async def send_email(
    client_id: Id,
    body: EmailSendIn,
    response: Response,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.MESSAGES_SEND)],
    idempotency_key: IdempotencyKey = None,
) -> MessagePublic:
    """Queues an e-mail to one of the client's addresses, logged as an `email` communication."""
    _require_email(services)
    client = await _card(session, user, client_id)
    addresses = [e.email for e in client.emails]
    if body.to:
        to = body.to.strip().lower()
        if to not in addresses:
            raise InvalidInput("to", "not an e-mail address of this client")
    elif addresses:
        to = addresses[0]
    else:
        raise InvalidInput("to", "the client has no e-mail address")
    fields = await messages.template_fields(session, client, body.deal_id)
    message, created = await enqueue(
        session,
        channel="email",
        client=client,
        user=user,
        to_address=to,
        subject=render(body.subject, client, fields),
        body=render(body.text, client, fields),
        idempotency_key=idempotency_key,
    )
    await session.commit()
    if not created:
        response.status_code = 200
    _wake(services.links.email_outbox)
    return _public(message)


@router.get("/messages/{message_id}", operation_id="get_message")
async def get_message(
    message_id: Id,
    session: SessionDep,
    user: Annotated[User, require(Permission.CLIENTS_READ)],
) -> MessagePublic:
    return _public(await messages.message_for(session, user, message_id))


@router.post("/sms/bulk", status_code=202, operation_id="send_bulk_sms")
async def send_bulk(
    body: BulkSmsIn,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.MESSAGES_BULK)],
) -> BulkSmsPublic:
    """Queues one SMS per client of a saved view or a filter, `rate` per second; opted-out
    clients and clients without a mobile phone are skipped and listed."""
    _require_sms(services)
    bulk = await bulk_sends.create_bulk(
        session,
        user,
        text=body.text,
        view_id=body.view_id,
        filters=body.filters,
        rate=body.rate or services.settings.sms_bulk_rate,
        region=services.settings.default_region,
    )
    await session.commit()
    _wake(services.links.sms_outbox)
    return await _bulk_public(session, bulk)


@router.get("/sms/bulk/{bulk_id}", operation_id="get_bulk_sms")
async def get_bulk(
    bulk_id: Id,
    session: SessionDep,
    user: Annotated[User, require(Permission.MESSAGES_BULK)],
) -> BulkSmsPublic:
    """The report: how many were sent, delivered and failed so far."""
    return await _bulk_public(session, await messages.bulk_for(session, user, bulk_id))


async def _bulk_public(session: SessionDep, bulk: BulkSend) -> BulkSmsPublic:
    counts = await bulk_sends.report(session, bulk.id)
    return BulkSmsPublic(
        id=bulk.id,
        status=bulk.status,
        text=bulk.body,
        rate=bulk.rate,
        skipped=list(bulk.skipped),
        created_at=bulk.created_at,
        finished_at=bulk.finished_at,
        **counts.as_dict(),
    )
