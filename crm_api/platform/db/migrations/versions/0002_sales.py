"""sales: deal stages (seeded), deals and their stage history, tasks, schedules, plans,
routing state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:56:31.944616
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copy of the stages the product ships with: (code, name, Russian name, kind).
BUILTIN_STAGES = (
    ("unsorted", "Unsorted", "Неразобранное", "open"),
    ("first_contact", "First contact", "Первичный контакт", "open"),
    ("negotiation", "Negotiation", "Переговоры", "open"),
    ("deciding", "Deciding", "Принимают решение", "open"),
    ("contract", "Contract approval", "Согласование договора", "open"),
    ("won", "Won", "Успешно реализовано", "won"),
    ("lost", "Lost", "Закрыто и не реализовано", "lost"),
)


def upgrade() -> None:
    op.create_table(
        "deal_stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_ru", sa.String(length=100), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("open", "won", "lost", name="stagekind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stages")),
        sa.UniqueConstraint("code", name=op.f("uq_deal_stages_code")),
    )
    op.create_table(
        "route_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_route_counters")),
    )
    op.create_table(
        "route_asks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_route_asks_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_asks")),
        sa.UniqueConstraint("call_id", "attempt", name="uq_route_asks_call_attempt"),
    )
    with op.batch_alter_table("route_asks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_route_asks_call_id"), ["call_id"], unique=False)

    op.create_table(
        "sales_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sales_plans_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_plans")),
        sa.UniqueConstraint("user_id", "month", name="uq_sales_plans_user_month"),
    )
    op.create_table(
        "schedule_exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "vacation",
                "sick",
                "swap",
                "extra",
                name="exceptionkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("other_user_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["other_user_id"],
            ["users.id"],
            name=op.f("fk_schedule_exceptions_other_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_schedule_exceptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_exceptions")),
    )
    with op.batch_alter_table("schedule_exceptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schedule_exceptions_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("starts", sa.Time(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_shifts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shifts")),
    )
    with op.batch_alter_table("shifts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shifts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "deals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column(
            "stage_kind",
            sa.Enum("open", "won", "lost", name="stagekind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("lead_source_id", sa.Integer(), nullable=True),
        sa.Column("expected_close", sa.Date(), nullable=True),
        sa.Column("lost_reason", sa.Text(), nullable=True),
        sa.Column("satisfaction", sa.SmallInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_deals_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_deals_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["lead_source_id"],
            ["lead_sources.id"],
            name=op.f("fk_deals_lead_source_id_lead_sources"),
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"], ["users.id"], name=op.f("fk_deals_manager_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["deal_stages.id"], name=op.f("fk_deals_stage_id_deal_stages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deals_client_id"), ["client_id"], unique=False)
        batch_op.create_index("ix_deals_closed", ["closed_at"], unique=False)
        batch_op.create_index("ix_deals_created", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_deals_manager_created", ["manager_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_deals_open_activity", ["stage_kind", "last_activity_at"], unique=False
        )
        batch_op.create_index("ix_deals_stage", ["stage_id"], unique=False)

    op.create_table(
        "deal_stage_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("from_stage_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deal_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.id"],
            name=op.f("fk_deal_stage_visits_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_stage_id"],
            ["deal_stages.id"],
            name=op.f("fk_deal_stage_visits_from_stage_id_deal_stages"),
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["deal_stages.id"], name=op.f("fk_deal_stage_visits_stage_id_deal_stages")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_deal_stage_visits_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_visits")),
    )
    with op.batch_alter_table("deal_stage_visits", schema=None) as batch_op:
        batch_op.create_index("ix_deal_stage_visits_deal", ["deal_id", "entered_at"], unique=False)
        batch_op.create_index("ix_deal_stage_visits_entered", ["entered_at"], unique=False)
        batch_op.create_index(
            "ix_deal_stage_visits_cohort", ["deal_created_at", "deal_id"], unique=False
        )

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "source",
            sa.Enum(
                "manual",
                "missed_call",
                "stale_deal",
                "handoff",
                name="tasksource",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("source_key", sa.String(length=100), nullable=True),
        sa.Column("previous_task_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_tasks_assignee_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_tasks_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_tasks_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_tasks_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["previous_task_id"],
            ["tasks.id"],
            name=op.f("fk_tasks_previous_task_id_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("source_key", name=op.f("uq_tasks_source_key")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tasks_assignee_open", ["assignee_id", "done_at", "due_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tasks_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_deal_id"), ["deal_id"], unique=False)
        batch_op.create_index("ix_tasks_reminder_due", ["reminded_at", "remind_at"], unique=False)

    # The reports count a manager's calls and messages per day.
    with op.batch_alter_table("communications", schema=None) as batch_op:
        batch_op.create_index("ix_communications_user_time", ["user_id", "occurred_at"])
        batch_op.create_index("ix_communications_occurred", ["occurred_at"])

    stages = sa.table(
        "deal_stages",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("name_ru", sa.String),
        sa.column("position", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("is_active", sa.Boolean),
    )
    op.bulk_insert(
        stages,
        [
            {
                "code": code,
                "name": name,
                "name_ru": name_ru,
                "position": i,
                "kind": kind,
                "is_active": True,
            }
            for i, (code, name, name_ru, kind) in enumerate(BUILTIN_STAGES)
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("communications", schema=None) as batch_op:
        batch_op.drop_index("ix_communications_occurred")
        batch_op.drop_index("ix_communications_user_time")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_reminder_due")
        batch_op.drop_index(batch_op.f("ix_tasks_deal_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_client_id"))
        batch_op.drop_index("ix_tasks_assignee_open")

    op.drop_table("tasks")
    with op.batch_alter_table("deal_stage_visits", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_stage_visits_cohort")
        batch_op.drop_index("ix_deal_stage_visits_entered")
        batch_op.drop_index("ix_deal_stage_visits_deal")

    op.drop_table("deal_stage_visits")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index("ix_deals_stage")
        batch_op.drop_index("ix_deals_open_activity")
        batch_op.drop_index("ix_deals_manager_created")
        batch_op.drop_index("ix_deals_created")
        batch_op.drop_index("ix_deals_closed")
        batch_op.drop_index(batch_op.f("ix_deals_client_id"))

    op.drop_table("deals")
    with op.batch_alter_table("shifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shifts_user_id"))

    op.drop_table("shifts")
    with op.batch_alter_table("schedule_exceptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_exceptions_user_id"))

    op.drop_table("schedule_exceptions")
    op.drop_table("sales_plans")
    with op.batch_alter_table("route_asks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_route_asks_call_id"))

    op.drop_table("route_asks")
    op.drop_table("route_counters")
    op.drop_table("deal_stages")
