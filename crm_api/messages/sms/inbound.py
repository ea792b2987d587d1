"""A text from a client: a communication on their card (a new card for an unknown
number), and "STOP" turns their SMS off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.clients import phones
from crm_api.clients.models import Client
from crm_api.clients.service import find_or_create_by_phone
from crm_api.clients.timeline.models import CommDirection, CommKind, Communication
from crm_api.clients.timeline.service import Fact, record
from sms_gateway.types import InboundSms

STOP_WORDS = frozenset({"STOP", "СТОП", "STOPALL", "UNSUBSCRIBE", "ОТПИСАТЬСЯ"})


@dataclass(frozen=True, slots=True)
class Received:
    client: Client
    communication: Communication
    new_card: bool
    opted_out: bool  # this message turned the client's SMS off
    again: bool  # the SMSC delivered a message already stored (nothing new to announce)


def is_stop(text: str) -> bool:
    word = text.strip().strip(".!").upper()
    return word in STOP_WORDS


async def receive(
    session: AsyncSession, sms: InboundSms, *, region: str, now: datetime, key: str
) -> Received | None:
    """None when the sender is not a phone number (an alphanumeric sender id)."""
    e164 = phones.try_normalize(sms.source, region)
    if e164 is None:
        return None
    client, created = await find_or_create_by_phone(session, e164, source_code="incoming_sms")
    stop = is_stop(sms.text)
    comm, stored, _ = await record(
        session,
        Fact(
            client_id=client.id,
            kind=CommKind.SMS,
            external_id=key,
            direction=CommDirection.INBOUND,
            status="received",
            occurred_at=now,
            user_id=client.manager_id,
            body=sms.text,
            details={"from": e164, "to": sms.destination, **({"opt_out": True} if stop else {})},
        ),
    )
    opted_out = stop and not client.sms_opted_out
    if stop:
        client.sms_opted_out = True
    return Received(client, comm, created, opted_out, again=not stored)


def inbound_key(sms: InboundSms) -> str:
    """The external id of a received text: what the SMSC identifies it by (see
    InboundSms.ref), so a redelivery of the same PDU is stored once and two equal
    replies are two messages."""
    return f"sms-in:{sms.ref}"
