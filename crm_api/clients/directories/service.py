"""Directories of the card: custom field definitions, and the named lists (lead sources,
segments, groups) a card picks from. Items Callcard itself uses (with a `code`) stay."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.clients.directories.models import ClientGroup, CustomFieldDef, LeadSource, Segment
from crm_api.platform.errors import Conflict, NotFound

Item = LeadSource | Segment | ClientGroup
MODELS: dict[str, type[Item]] = {
    "lead-sources": LeadSource,
    "segments": Segment,
    "groups": ClientGroup,
}


async def list_custom_fields(session: AsyncSession) -> list[CustomFieldDef]:
    return list((await session.scalars(select(CustomFieldDef).order_by(CustomFieldDef.id))).all())


async def create_custom_field(
    session: AsyncSession, *, key: str, label: str, type: str, options: list[str]
) -> CustomFieldDef:
    item = CustomFieldDef(key=key, label=label, type=type, options=options)
    session.add(item)
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"custom field {key!r} exists").with_code("duplicate_name") from exc
    return item


async def _commit_unique(session: AsyncSession, name: str | None) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"{name!r} already exists").with_code("duplicate_name") from exc


async def list_items(session: AsyncSession, kind: str) -> list[Item]:
    model: Any = MODELS[kind]
    return list((await session.scalars(select(model).order_by(model.name))).all())


async def create_item(session: AsyncSession, kind: str, name: str, color: str | None) -> Item:
    model = MODELS[kind]
    item = model(name=name.strip())
    if color and isinstance(item, ClientGroup):
        item.color = color
    session.add(item)
    await _commit_unique(session, name)
    return item


async def _item(session: AsyncSession, kind: str, item_id: int) -> Item:
    model: Any = MODELS[kind]
    item: Item | None = await session.get(model, item_id)
    if item is None:
        raise NotFound(f"{kind} item #{item_id} not found")
    return item


async def update_item(
    session: AsyncSession, kind: str, item_id: int, name: str | None, color: str | None
) -> Item:
    item = await _item(session, kind, item_id)
    if name is not None:
        item.name = name.strip()
    if color is not None and isinstance(item, ClientGroup):
        item.color = color
    await _commit_unique(session, name)
    return item


async def delete_item(session: AsyncSession, kind: str, item_id: int) -> None:
    item = await _item(session, kind, item_id)
    if getattr(item, "code", None):
        raise Conflict("this item is used by Callcard itself").with_code("directory_item_locked")
    await session.delete(item)
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict("still used by clients").with_code("directory_item_in_use") from exc
