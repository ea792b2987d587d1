"""Saved views: a user's named client filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.clients.list_models import SavedView
from crm_api.platform.errors import Conflict, NotFound


async def list_views(session: AsyncSession, user: User) -> list[SavedView]:
    rows = await session.scalars(
        select(SavedView).where(SavedView.user_id == user.id).order_by(SavedView.name)
    )
    return list(rows.all())


async def create_view(
    session: AsyncSession, user: User, name: str, filters: dict[str, Any]
) -> SavedView:
    view = SavedView(user_id=user.id, name=name.strip(), filters=filters)
    session.add(view)
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"you already have a view named {name!r}").with_code(
            "duplicate_name"
        ) from exc
    return view


async def delete_view(session: AsyncSession, user: User, view_id: int) -> None:
    view = await session.get(SavedView, view_id)
    if view is None or view.user_id != user.id:
        raise NotFound(f"view #{view_id} not found")
    await session.delete(view)
    await session.commit()
