"""Open deals and open tasks of a card, for the screen-pop (filled in by the sales side)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def open_deals(session: AsyncSession, client_id: int) -> list[dict[str, Any]]:
    return []


async def open_tasks(session: AsyncSession, client_id: int) -> list[dict[str, Any]]:
    return []
