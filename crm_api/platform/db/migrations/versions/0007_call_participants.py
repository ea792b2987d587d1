"""calls: one row per user who talked on a call (each agent of a transferred call may
listen to its recording); existing calls get their recorded user

Revision ID: 0007_call_participants
Revises: 0006_call_result
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_call_participants"
down_revision = "0006_call_result"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_participants",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("extension", sa.String(length=32), nullable=True),
        sa.Column("talk_s", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id", "user_id"),
    )
    op.create_index("ix_call_participants_user_id", "call_participants", ["user_id"])
    # Before this table only the user who took the call was known; the extensions in
    # `agents` may belong to someone else by now, so they give no rows.
    op.execute(
        "INSERT INTO call_participants (call_id, user_id, extension, talk_s)"
        " SELECT id, user_id, answered_by, talk_s FROM calls WHERE user_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_call_participants_user_id", table_name="call_participants")
    op.drop_table("call_participants")
