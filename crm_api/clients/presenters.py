"""ORM objects and Core rows to response models, in one place."""

from __future__ import annotations

from typing import Any

from crm_api.accounts.models import User
from crm_api.clients.timeline.models import Communication
from crm_api.clients.timeline.schemas import CommentPublic, CommunicationPublic
from crm_api.platform.schemas import UserRef, user_ref_of


def user_ref(user: User | None) -> UserRef | None:
    return UserRef(id=user.id, full_name=user.full_name) if user else None


def communication_public(comm: Communication) -> CommunicationPublic:
    comments = [comment_public(c, user_ref(c.user)) for c in comm.comments]
    return _communication(comm, user_ref(comm.user), comments)


def comment_of_row(row: Any) -> CommentPublic:
    """A comment from a row with its columns' names and its author's `user_name`."""
    return comment_public(row, user_ref_of(row.user_id, row.user_name))


def communication_of_row(row: Any, comments: list[CommentPublic]) -> CommunicationPublic:
    """A communication from a row with its columns' names and its author's `user_name`."""
    return _communication(row, user_ref_of(row.user_id, row.user_name), comments)


def comment_public(comment: Any, user: UserRef | None) -> CommentPublic:
    """`comment`: a CommunicationComment or a row with its columns."""
    return CommentPublic(id=comment.id, user=user, body=comment.body, created_at=comment.created_at)


def _communication(
    comm: Any, user: UserRef | None, comments: list[CommentPublic]
) -> CommunicationPublic:
    """`comm`: a Communication or a row with its columns."""
    return CommunicationPublic(
        id=comm.id,
        client_id=comm.client_id,
        kind=comm.kind,
        direction=comm.direction,
        status=comm.status,
        user=user,
        occurred_at=comm.occurred_at,
        subject=comm.subject,
        body=comm.body,
        deal_id=comm.deal_id,
        details=comm.details or {},
        comments=comments,
    )
