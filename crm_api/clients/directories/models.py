from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.platform.db.base import Base, JsonType


class LeadSource(Base):
    __tablename__ = "lead_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Stable key for sources the product itself assigns (e.g. "incoming_call").
    code: Mapped[str | None] = mapped_column(String(50), unique=True)


# The sources the migrations made, by code, with the names they were made with (an admin
# may rename them; tests resetting a database to its migrated state restore these).
BUILTIN_LEAD_SOURCES = {"incoming_call": "Входящий звонок", "incoming_sms": "Входящее SMS"}


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class ClientGroup(Base):
    __tablename__ = "client_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    color: Mapped[str] = mapped_column(String(16), default="#607d8b")


class CustomFieldDef(Base):
    """A user-defined field on client cards; values live in Client.custom_fields by key."""

    __tablename__ = "custom_field_defs"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))  # text | number | date | select
    options: Mapped[list[str]] = mapped_column(JsonType, default=list)
