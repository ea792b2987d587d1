"""What the operator sees the moment the phone rings: the card in brief."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.calls import card_extras
from crm_api.calls.schemas import CallerCard, PopClient
from crm_api.clients.models import Client
from crm_api.clients.presenters import communication_public
from crm_api.clients.summary import summary_of
from crm_api.clients.timeline import service as communications

LAST_COMMUNICATIONS = 3
NOBODY = CallerCard(client=None, communications=[], deals=[], tasks=[])


async def caller_card(session: AsyncSession, client: Client) -> CallerCard:
    recent = await communications.latest(session, client.id, LAST_COMMUNICATIONS)
    # A card the PBX made for an unknown number that nobody has filled in yet.
    is_new = client.created_by_id is None and client.updated_by_id is None and not recent
    summary = await summary_of(session, client.id)
    return CallerCard(
        client=PopClient(**summary.model_dump(), is_new=is_new),
        communications=[communication_public(c) for c in recent],
        deals=await card_extras.open_deals(session, client.id),
        tasks=await card_extras.open_tasks(session, client.id),
    )
