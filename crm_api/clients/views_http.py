from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients.list_models import SavedView
from crm_api.clients.schemas import SavedViewCreate, SavedViewPublic
from crm_api.platform.deps import SessionDep, require
from crm_api.platform.errors import Conflict, NotFound
from crm_api.platform.schemas import ItemList

router = APIRouter(prefix="/views", tags=["views"])
Me = Annotated[User, require(Permission.SELF)]


@router.get("", operation_id="list_views")
async def list_views(session: SessionDep, user: Me) -> ItemList[SavedViewPublic]:
    rows = await session.scalars(
        select(SavedView).where(SavedView.user_id == user.id).order_by(SavedView.name)
    )
    return ItemList(items=[SavedViewPublic.model_validate(v) for v in rows])


@router.post("", status_code=201, operation_id="create_view")
async def create_view(body: SavedViewCreate, session: SessionDep, user: Me) -> SavedViewPublic:
    view = SavedView(
        user_id=user.id,
        name=body.name.strip(),
        filters=body.filters.model_dump(mode="json", exclude_defaults=True),
    )
    session.add(view)
    try:
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"you already have a view named {body.name!r}").with_code(
            "duplicate_name"
        ) from exc
    return SavedViewPublic.model_validate(view)


@router.delete("/{view_id}", status_code=204, operation_id="delete_view")
async def delete_view(view_id: int, session: SessionDep, user: Me) -> Response:
    view = await session.get(SavedView, view_id)
    if view is None or view.user_id != user.id:
        raise NotFound(f"view #{view_id} not found")
    await session.delete(view)
    await session.commit()
    return Response(status_code=204)
