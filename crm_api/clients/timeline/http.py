from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients.presenters import comment_public, user_ref
from crm_api.clients.timeline import notifier
from crm_api.clients.timeline import service as communications
from crm_api.clients.timeline.schemas import CommentCreate, CommentPublic
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.schemas import Id

router = APIRouter(prefix="/communications", tags=["communications"])


@router.post("/{communication_id}/comments", status_code=201, operation_id="add_comment")
async def add_comment(
    communication_id: Id,
    body: CommentCreate,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.NOTES_WRITE)],
) -> CommentPublic:
    comm = await communications.get_for(session, user, communication_id)
    comment = await communications.add_comment(session, user, comm, body.body)
    await session.commit()
    public = comment_public(comment, user_ref(comment.user))
    await notifier.communication_commented(services.hub, comm.id, comm.client_id, public)
    return public
