"""auth tokens: when each was last used (idle sessions end; the token list shows it)

Revision ID: 0003_token_last_used
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_token_last_used"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
