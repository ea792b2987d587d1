"""calls: the PBX that carried each call; a call is (pbx, pbx_call_id), since two PBXs may
give the same Linkedid to different calls. Existing calls were the default PBX's.

Revision ID: 0009_call_pbx
Revises: 0008_stale_deal_kind
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

from crm_api.platform.settings import Settings

revision = "0009_call_pbx"
down_revision = "0008_stale_deal_kind"
branch_labels = None
depends_on = None

CHILDREN = ("call_participants", "recordings")  # ON DELETE CASCADE from calls


@contextlib.contextmanager
def _children_kept() -> Iterator[None]:
    """SQLite alters `calls` by copying it into a new table and dropping the old one, and
    the drop deletes the calls' children with it: they are set aside and put back."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    for table in CHILDREN:
        op.execute(f"CREATE TEMP TABLE kept_{table} AS SELECT * FROM {table}")
    yield
    for table in CHILDREN:
        op.execute(f"INSERT INTO {table} SELECT * FROM kept_{table}")
        op.execute(f"DROP TABLE kept_{table}")


def upgrade() -> None:
    # The name the consumers give events that name no PBX: the deployment's own.
    default = Settings().pbx_name
    with _children_kept():
        with op.batch_alter_table("calls", schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("pbx", sa.String(length=64), nullable=False, server_default=default)
            )
        with op.batch_alter_table("calls", schema=None) as batch_op:
            batch_op.alter_column("pbx", server_default=None)
            batch_op.drop_constraint("uq_calls_pbx_call_id", type_="unique")
            batch_op.create_unique_constraint("uq_calls_pbx_pbx_call_id", ["pbx", "pbx_call_id"])


def downgrade() -> None:
    # Fails while two PBXs' calls share an id: which one would keep it is not ours to choose.
    with _children_kept(), op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint("uq_calls_pbx_pbx_call_id", type_="unique")
        batch_op.create_unique_constraint("uq_calls_pbx_call_id", ["pbx_call_id"])
        batch_op.drop_column("pbx")
