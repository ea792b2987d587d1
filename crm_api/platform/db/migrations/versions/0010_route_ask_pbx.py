"""route_asks: the PBX of each routed call, as in calls (0009): two PBXs may give the same
id to different calls, and each call has its own attempts. Existing offers were the
default PBX's.

Revision ID: 0010_route_ask_pbx
Revises: 0009_call_pbx
Create Date: 2026-12-02 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crm_api.platform.settings import Settings

revision = "0010_route_ask_pbx"
down_revision = "0009_call_pbx"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The name the consumers give events that name no PBX: the deployment's own.
    default = Settings().pbx_name
    with op.batch_alter_table("route_asks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pbx", sa.String(length=64), nullable=False, server_default=default)
        )
    with op.batch_alter_table("route_asks", schema=None) as batch_op:
        batch_op.alter_column("pbx", server_default=None)
        batch_op.drop_constraint("uq_route_asks_call_attempt", type_="unique")
        batch_op.create_unique_constraint(
            "uq_route_asks_pbx_call_attempt", ["pbx", "call_id", "attempt"]
        )


def downgrade() -> None:
    # Fails while two PBXs' offers share a (call id, attempt), as 0009's does for calls.
    with op.batch_alter_table("route_asks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_route_asks_pbx_call_attempt", type_="unique")
        batch_op.create_unique_constraint("uq_route_asks_call_attempt", ["call_id", "attempt"])
        batch_op.drop_column("pbx")
