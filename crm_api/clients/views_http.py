from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients import views
from crm_api.clients.schemas import SavedViewCreate, SavedViewPublic
from crm_api.platform.deps import SessionDep, require
from crm_api.platform.schemas import Id, ItemList

router = APIRouter(prefix="/views", tags=["views"])
Me = Annotated[User, require(Permission.SELF)]


@router.get("", operation_id="list_views")
async def list_views(session: SessionDep, user: Me) -> ItemList[SavedViewPublic]:
    rows = await views.list_views(session, user)
    return ItemList(items=[SavedViewPublic.model_validate(v) for v in rows])


@router.post("", status_code=201, operation_id="create_view")
async def create_view(body: SavedViewCreate, session: SessionDep, user: Me) -> SavedViewPublic:
    filters = body.filters.model_dump(mode="json", exclude_defaults=True)
    view = await views.create_view(session, user, body.name, filters)
    return SavedViewPublic.model_validate(view)


@router.delete("/{view_id}", status_code=204, operation_id="delete_view")
async def delete_view(view_id: Id, session: SessionDep, user: Me) -> Response:
    await views.delete_view(session, user, view_id)
    return Response(status_code=204)
