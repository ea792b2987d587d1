from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients.directories import service as directories
from crm_api.clients.directories.schemas import (
    CustomFieldDefCreate,
    CustomFieldDefPublic,
    DirectoryItem,
    DirectoryItemCreate,
    DirectoryItemUpdate,
    DirectoryKind,
)
from crm_api.platform.deps import SessionDep, require
from crm_api.platform.schemas import Id, ItemList

router = APIRouter(prefix="/directories", tags=["directories"])
Reader = Annotated[User, require(Permission.DIRECTORIES_READ)]
Admin = Annotated[User, require(Permission.DIRECTORIES_MANAGE)]


@router.get("/custom-fields", operation_id="list_custom_fields")
async def list_custom_fields(session: SessionDep, _u: Reader) -> ItemList[CustomFieldDefPublic]:
    rows = await directories.list_custom_fields(session)
    return ItemList(items=[CustomFieldDefPublic.model_validate(r) for r in rows])


@router.post("/custom-fields", status_code=201, operation_id="create_custom_field")
async def create_custom_field(
    body: CustomFieldDefCreate, session: SessionDep, _u: Admin
) -> CustomFieldDefPublic:
    item = await directories.create_custom_field(
        session, key=body.key, label=body.label, type=body.type, options=body.options
    )
    return CustomFieldDefPublic.model_validate(item)


@router.get("/{kind}", operation_id="list_directory")
async def list_items(
    kind: DirectoryKind, session: SessionDep, _u: Reader
) -> ItemList[DirectoryItem]:
    rows = await directories.list_items(session, kind)
    return ItemList(items=[DirectoryItem.model_validate(r) for r in rows])


@router.post("/{kind}", status_code=201, operation_id="create_directory_item")
async def create_item(
    kind: DirectoryKind, body: DirectoryItemCreate, session: SessionDep, _u: Admin
) -> DirectoryItem:
    item = await directories.create_item(session, kind, body.name, body.color)
    return DirectoryItem.model_validate(item)


@router.patch("/{kind}/{item_id}", operation_id="update_directory_item")
async def update_item(
    kind: DirectoryKind, item_id: Id, body: DirectoryItemUpdate, session: SessionDep, _u: Admin
) -> DirectoryItem:
    item = await directories.update_item(session, kind, item_id, body.name, body.color)
    return DirectoryItem.model_validate(item)


@router.delete("/{kind}/{item_id}", status_code=204, operation_id="delete_directory_item")
async def delete_item(kind: DirectoryKind, item_id: Id, session: SessionDep, _u: Admin) -> Response:
    await directories.delete_item(session, kind, item_id)
    return Response(status_code=204)
