from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_api.accounts.models import User
from crm_api.clients.directories.models import ClientGroup, LeadSource, Segment
from crm_api.platform.db.base import Base, JsonType, str_enum, utcnow


class ClientKind(enum.StrEnum):
    PERSON = "person"
    COMPANY = "company"


client_group_links = Table(
    "client_group_links",
    Base.metadata,
    Column("client_id", ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("client_groups.id", ondelete="CASCADE"), primary_key=True),
)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ClientKind] = mapped_column(str_enum(ClientKind))
    name: Mapped[str] = mapped_column(String(300))
    # casefold()ed name: SQLite's LIKE folds ASCII only, so Cyrillic search needs this.
    search_name: Mapped[str] = mapped_column(String(300))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    birthday: Mapped[date | None] = mapped_column(Date)
    dates: Mapped[list[dict[str, str]]] = mapped_column(JsonType, default=list)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    lead_source_id: Mapped[int | None] = mapped_column(ForeignKey("lead_sources.id"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"), index=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    sms_opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    phones: Mapped[list[ClientPhone]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="ClientPhone.position"
    )
    emails: Mapped[list[ClientEmail]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="ClientEmail.position"
    )
    groups: Mapped[list[ClientGroup]] = relationship(secondary=client_group_links)
    lead_source: Mapped[LeadSource | None] = relationship()
    segment: Mapped[Segment | None] = relationship()
    manager: Mapped[User | None] = relationship(foreign_keys=[manager_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id])
    company: Mapped[Client | None] = relationship(remote_side=[id], foreign_keys=[company_id])

    __table_args__ = (Index("ix_clients_search_name", "search_name"),)


class ClientPhone(Base):
    __tablename__ = "client_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    e164: Mapped[str] = mapped_column(String(20), unique=True)  # one subscriber, one card
    digits: Mapped[str] = mapped_column(String(20))  # e164 without "+", for fragment search
    raw: Mapped[str] = mapped_column(String(50))  # as typed
    label: Mapped[str | None] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(default=0)

    client: Mapped[Client] = relationship(back_populates="phones")


class ClientEmail(Base):
    __tablename__ = "client_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower-cased
    label: Mapped[str | None] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(default=0)

    client: Mapped[Client] = relationship(back_populates="emails")
