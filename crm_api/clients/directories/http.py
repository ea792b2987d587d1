from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients.directories.models import ClientGroup, CustomFieldDef, LeadSource, Segment
from crm_api.clients.directories.schemas import (
    CustomFieldDefCreate,
    CustomFieldDefPublic,
    DirectoryItem,
    DirectoryItemCreate,
    DirectoryItemUpdate,
    DirectoryKind,
)
from crm_api.platform.deps import SessionDep, require
from crm_api.platform.errors import Conflict, NotFound
from crm_api.platform.schemas import ItemList

router = APIRouter(prefix="/directories", tags=["directories"])
Reader = Annotated[User, require(Permission.DIRECTORIES_READ)]
Admin = Annotated[User, require(Permission.DIRECTORIES_MANAGE)]
MODELS: dict[str, Any] = {"lead-sources": LeadSource, "segments": Segment, "groups": ClientGroup}


@router.get("/custom-fields", operation_id="list_custom_fields")
async def list_custom_fields(session: SessionDep, _u: Reader) -> ItemList[CustomFieldDefPublic]:
    rows = await session.scalars(select(CustomFieldDef).order_by(CustomFieldDef.id))
    return ItemList(items=[CustomFieldDefPublic.model_validate(r) for r in rows])


@router.post("/custom-fields", status_code=201, operation_id="create_custom_field")
async def create_custom_field(
    body: CustomFieldDefCreate, session: SessionDep, _u: Admin
) -> CustomFieldDefPublic:
    item = CustomFieldDef(**body.model_dump())
    session.add(item)
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"custom field {body.key!r} exists").with_code("duplicate_name") from exc
    return CustomFieldDefPublic.model_validate(item)


@router.get("/{kind}", operation_id="list_directory")
async def list_items(
    kind: DirectoryKind, session: SessionDep, _u: Reader
) -> ItemList[DirectoryItem]:
    model = MODELS[kind]
    rows = await session.scalars(select(model).order_by(model.name))
    return ItemList(items=[DirectoryItem.model_validate(r) for r in rows])


@router.post("/{kind}", status_code=201, operation_id="create_directory_item")
async def create_item(
    kind: DirectoryKind, body: DirectoryItemCreate, session: SessionDep, _u: Admin
) -> DirectoryItem:
    model = MODELS[kind]
    item = model(name=body.name.strip())
    if body.color and model is ClientGroup:
        item.color = body.color
    session.add(item)
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"{body.name!r} already exists").with_code("duplicate_name") from exc
    return DirectoryItem.model_validate(item)


async def _item(session: SessionDep, kind: str, item_id: int) -> Any:
    item = await session.get(MODELS[kind], item_id)
    if item is None:
        raise NotFound(f"{kind} item #{item_id} not found")
    return item


@router.patch("/{kind}/{item_id}", operation_id="update_directory_item")
async def update_item(
    kind: DirectoryKind, item_id: int, body: DirectoryItemUpdate, session: SessionDep, _u: Admin
) -> DirectoryItem:
    item = await _item(session, kind, item_id)
    if body.name is not None:
        item.name = body.name.strip()
    if body.color is not None and isinstance(item, ClientGroup):
        item.color = body.color
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"{body.name!r} already exists").with_code("duplicate_name") from exc
    return DirectoryItem.model_validate(item)


@router.delete("/{kind}/{item_id}", status_code=204, operation_id="delete_directory_item")
async def delete_item(
    kind: DirectoryKind, item_id: int, session: SessionDep, _u: Admin
) -> Response:
    item = await _item(session, kind, item_id)
    if getattr(item, "code", None):
        raise Conflict("this item is used by Callcard itself").with_code("directory_item_locked")
    await session.delete(item)
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict("still used by clients").with_code("directory_item_in_use") from exc
    return Response(status_code=204)
