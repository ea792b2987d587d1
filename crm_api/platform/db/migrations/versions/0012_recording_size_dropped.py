"""recordings: no size; whether a recording is worth offering or serving is read from its
file each time (calls.models.has_sound), and nothing read the size written at a call's end

Revision ID: 0012_recording_size_dropped
Revises: 0011_phone_label_kinds
Create Date: 2026-12-03 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_recording_size_dropped"
down_revision = "0011_phone_label_kinds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("size")


def downgrade() -> None:
    # Empty until a call's end writes it again, as the code before this revision does.
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("size", sa.Integer(), nullable=True))
