from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_api.accounts.models import User
from crm_api.platform.db.base import Base, JsonType, str_enum, utcnow


class CommKind(enum.StrEnum):
    CALL = "call"
    SMS = "sms"
    EMAIL = "email"
    NOTE = "note"


class CommDirection(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Communication(Base):
    """One entry of a card's timeline, whatever its kind.

    `external_id` is the id of the fact in the system that produced it (the PBX's name and
    its call id, the outbox message id), unique per kind, so replayed events write nothing
    twice.
    `details` holds the kind's own facts (call numbers and durations, SMS parts), read
    and written through the typed schemas of the service that owns that kind."""

    __tablename__ = "communications"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    kind: Mapped[CommKind] = mapped_column(str_enum(CommKind))
    direction: Mapped[CommDirection | None] = mapped_column(str_enum(CommDirection))
    status: Mapped[str] = mapped_column(String(32), default="done")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    deal_id: Mapped[int | None] = mapped_column(index=True)
    external_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship()
    comments: Mapped[list[CommunicationComment]] = relationship(
        back_populates="communication",
        cascade="all, delete-orphan",
        order_by="CommunicationComment.id",
    )

    __table_args__ = (
        Index("ix_communications_client_timeline", "client_id", "occurred_at", "id"),
        UniqueConstraint("kind", "external_id", name="uq_communications_kind_external_id"),
    )


class CommunicationComment(Base):
    __tablename__ = "communication_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    communication_id: Mapped[int] = mapped_column(
        ForeignKey("communications.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    communication: Mapped[Communication] = relationship(back_populates="comments")
    user: Mapped[User | None] = relationship()
