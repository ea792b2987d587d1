"""sms kept receipts: delivery receipts acknowledged to the SMSC before any part had
their id, kept until a part takes them (they were only in the worker's memory, lost with
it)

Revision ID: 0013_sms_kept_receipts
Revises: 0012_recording_size_dropped
Create Date: 2026-12-03 17:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_sms_kept_receipts"
down_revision = "0012_recording_size_dropped"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_kept_receipts",
        sa.Column("smsc_message_id", sa.String(length=100), nullable=False),
        sa.Column("handset", sa.String(length=32), nullable=False),
        sa.Column("stat", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error", sa.String(length=100), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("smsc_message_id", name=op.f("pk_sms_kept_receipts")),
    )
    op.create_index(op.f("ix_sms_kept_receipts_received_at"), "sms_kept_receipts", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sms_kept_receipts_received_at"), table_name="sms_kept_receipts")
    op.drop_table("sms_kept_receipts")
