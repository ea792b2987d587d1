"""The messages of a card as a user may see them, and the fields a template fills in."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.clients import service as clients_domain
from crm_api.clients.models import Client
from crm_api.messages.models import BulkSend, OutboxMessage
from crm_api.messages.sms.deals import deal_fields_for
from crm_api.platform.errors import Forbidden, InvalidInput, NotFound
from crm_api.sales.models import Deal


async def template_fields(
    session: AsyncSession, client: Client, deal_id: int | None
) -> dict[str, str]:
    """The client's latest open deal's fields, or those of the deal named (its own)."""
    if deal_id is None:
        return (await deal_fields_for(session, [client.id])).get(client.id, {})
    deal = await session.get(Deal, deal_id)
    if deal is None or deal.client_id != client.id:
        raise InvalidInput("deal_id", "not a deal of this client")
    amount = (await deal_fields_for(session, [client.id])).get(client.id, {})
    return {**amount, "deal_title": deal.title}


async def message_for(session: AsyncSession, user: User, message_id: int) -> OutboxMessage:
    message = await session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(f"message #{message_id} not found")
    await clients_domain.get_for(session, user, message.client_id)  # the card's access rules
    return message


async def bulk_for(session: AsyncSession, user: User, bulk_id: int) -> BulkSend:
    bulk = await session.get(BulkSend, bulk_id)
    if bulk is None:
        raise NotFound(f"bulk send #{bulk_id} not found")
    if bulk.user_id != user.id and user.role.value not in ("supervisor", "admin"):
        raise Forbidden("only its author and supervisors see a bulk send")
    return bulk
