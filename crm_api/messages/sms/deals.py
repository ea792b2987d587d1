"""Deal fields for message templates: the client's most recent open deal, if any."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.sales.models import Deal, StageKind


def _amount(minor: int, currency: str) -> str:
    whole, cents = divmod(minor, 100)
    text = f"{whole:,}".replace(",", " ")
    return f"{text}.{cents:02d} {currency}" if cents else f"{text} {currency}"


async def deal_fields_for(
    session: AsyncSession, client_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    if not client_ids:
        return {}
    rows = (
        await session.scalars(
            select(Deal)
            .where(Deal.client_id.in_(client_ids), Deal.stage_kind == StageKind.OPEN)
            .order_by(Deal.client_id, Deal.created_at.desc(), Deal.id.desc())
        )
    ).all()
    out: dict[int, dict[str, Any]] = {}
    for deal in rows:
        out.setdefault(
            deal.client_id,
            {"deal_title": deal.title, "deal_amount": _amount(deal.amount_minor, deal.currency)},
        )
    return out
