from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.platform.db.base import Base, JsonType, utcnow


class OutboxMessage(Base):
    """An SMS or e-mail on its way out. Written in the same transaction as its
    communication, sent by the outbox worker, never lost and never sent twice: a message
    is claimed before sending and its state only moves forward."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    communication_id: Mapped[int | None] = mapped_column(
        ForeignKey("communications.id", ondelete="SET NULL")
    )
    bulk_id: Mapped[int | None] = mapped_column(index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    # queued → sending → submitted → delivered | failed | expired | rejected; e-mail ends
    # "sent"; "uncertain": the link died before the SMSC answered, so its receipt is
    # awaited for a while before the message is sent again
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    final_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_outbox_user_idempotency"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )


class SmsPart(Base):
    """One SMSC message id of a (possibly multi-part) SMS, for delivery receipts."""

    __tablename__ = "sms_parts"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True
    )
    part_index: Mapped[int] = mapped_column(default=0)
    smsc_message_id: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Parts still waiting for their receipt, oldest news first: the overdue sweep.
    __table_args__ = (Index("ix_sms_parts_pending", "status", "updated_at"),)


class KeptReceipt(Base):
    """A delivery receipt acknowledged to the SMSC while no part had its id (it outran its
    submit result, or that result died with a worker): the SMSC will not deliver it again,
    so it waits here until a part takes it, and is dropped after a while."""

    __tablename__ = "sms_kept_receipts"

    smsc_message_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    handset: Mapped[str] = mapped_column(String(32))  # the number the message went to
    stat: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(index=True)


class BulkSend(Base):
    """One send to many clients (a saved view or a filter). Its messages are ordinary
    outbox messages carrying its id, spaced `rate` per second apart; the report counts
    them by state."""

    __tablename__ = "bulk_sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8), default="sms")
    body: Mapped[str] = mapped_column(Text)  # the template as written
    view_id: Mapped[int | None]
    filters: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    rate: Mapped[float] = mapped_column(Float)  # messages per second
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    total: Mapped[int] = mapped_column(default=0)  # messages queued
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
