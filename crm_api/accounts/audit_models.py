from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_api.accounts.models import User
from crm_api.platform.db.base import Base, JsonType, utcnow


class AuditEntry(Base):
    """Who changed what and when; `changes` maps a field to [before, after]."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))  # create | update | delete | ...
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[int]
    client_id: Mapped[int | None]  # the card this change shows on
    changes: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    user: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_audit_log_client", "client_id", "id"),
        Index("ix_audit_log_entity", "entity", "entity_id"),
    )
