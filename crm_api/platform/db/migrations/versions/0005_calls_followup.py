"""calls: why an unanswered call was not answered, its queue, the caller's name, talk per
agent and its callback task; tasks: kind + parameters, one open callback task per client

Revision ID: 0005
Revises: 0004_sms_parts_pending
Create Date: 2026-12-02 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004_sms_parts_pending"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
OPEN_CALLBACK = sa.text("kind = 'missed_call' AND done_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("params", JSON, nullable=True))
    # Callback tasks made before: one per missed call. Keep the newest open one per client
    # open; the rest of them are the same callback.
    op.execute(
        "UPDATE tasks SET kind = 'missed_call' WHERE source = 'missed_call' AND id IN ("
        " SELECT MAX(id) FROM tasks WHERE source = 'missed_call' AND done_at IS NULL"
        " GROUP BY client_id)"
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tasks_open_callback",
            ["client_id"],
            unique=True,
            sqlite_where=OPEN_CALLBACK,
            postgresql_where=OPEN_CALLBACK,
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unanswered", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("queue", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("caller_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("talk_by_agent", JSON, nullable=True))
        batch_op.add_column(sa.Column("callback_task_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_calls_callback_task_id_tasks",
            "tasks",
            ["callback_task_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint("fk_calls_callback_task_id_tasks", type_="foreignkey")
        batch_op.drop_column("callback_task_id")
        batch_op.drop_column("talk_by_agent")
        batch_op.drop_column("caller_name")
        batch_op.drop_column("queue")
        batch_op.drop_column("unanswered")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_open_callback")
        batch_op.drop_column("params")
        batch_op.drop_column("kind")
