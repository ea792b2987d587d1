from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from crm_api.clients.timeline.models import CommDirection, CommKind
from crm_api.platform.schemas import ApiModel, Id, UserRef


class CommentPublic(ApiModel):
    id: int
    user: UserRef | None
    body: str
    created_at: datetime


class CommunicationPublic(ApiModel):
    id: int
    client_id: int
    kind: CommKind
    direction: CommDirection | None
    status: str
    user: UserRef | None
    occurred_at: datetime
    subject: str | None
    body: str | None
    deal_id: int | None
    details: dict[str, Any]
    comments: list[CommentPublic]


class NoteCreate(ApiModel):
    body: str = Field(min_length=1, max_length=20_000)
    deal_id: Id | None = None


class CommentCreate(ApiModel):
    body: str = Field(min_length=1, max_length=20_000)
