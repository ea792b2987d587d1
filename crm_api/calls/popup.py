"""What the operator sees the moment the phone rings: the card in brief."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.calls import card_extras
from crm_api.clients.models import Client
from crm_api.clients.presenters import communication_public, user_ref
from crm_api.clients.timeline import service as communications

LAST_COMMUNICATIONS = 3


async def card_summary(session: AsyncSession, client: Client) -> dict[str, Any]:
    recent = await communications.latest(session, client.id, LAST_COMMUNICATIONS)
    # A card the PBX made for an unknown number that nobody has filled in yet: the
    # operator gets the new-card form instead of an empty card.
    is_new = client.created_by_id is None and client.updated_by_id is None and not recent
    manager = user_ref(client.manager)
    return {
        "client": {
            "id": client.id,
            "name": client.name,
            "company_name": client.company.name if client.company else None,
            "is_new": is_new,
            "manager": manager.model_dump() if manager else None,
        },
        "communications": [communication_public(c).model_dump(mode="json") for c in recent],
        "deals": await card_extras.open_deals(session, client.id),
        "tasks": await card_extras.open_tasks(session, client.id),
    }
