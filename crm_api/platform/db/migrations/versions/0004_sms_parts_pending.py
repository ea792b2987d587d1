"""sms parts: an index for the parts still waiting for their receipt (the sweep that
asks the SMSC about overdue receipts)

Revision ID: 0004_sms_parts_pending
"""

from __future__ import annotations

from alembic import op

revision = "0004_sms_parts_pending"
down_revision = "0003_token_last_used"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sms_parts_pending", "sms_parts", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_sms_parts_pending", table_name="sms_parts")
