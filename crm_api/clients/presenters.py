"""ORM rows to response models, in one place."""

from __future__ import annotations

from crm_api.accounts.models import User
from crm_api.clients.timeline.models import Communication
from crm_api.clients.timeline.schemas import CommentPublic, CommunicationPublic
from crm_api.platform.schemas import UserRef


def user_ref(user: User | None) -> UserRef | None:
    return UserRef(id=user.id, full_name=user.full_name) if user else None


def communication_public(comm: Communication) -> CommunicationPublic:
    return CommunicationPublic(
        id=comm.id,
        client_id=comm.client_id,
        kind=comm.kind,
        direction=comm.direction,
        status=comm.status,
        user=user_ref(comm.user),
        occurred_at=comm.occurred_at,
        subject=comm.subject,
        body=comm.body,
        deal_id=comm.deal_id,
        details=comm.details or {},
        comments=[
            CommentPublic(id=c.id, user=user_ref(c.user), body=c.body, created_at=c.created_at)
            for c in comm.comments
        ],
    )
