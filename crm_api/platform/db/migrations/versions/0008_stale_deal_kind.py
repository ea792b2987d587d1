"""tasks: a stale-deal task keeps its kind and parameters, not English prose (its title
becomes the deal's title; the UI words it in the user's language)

Revision ID: 0008_stale_deal_kind
Revises: 0007_call_participants
Create Date: 2026-12-02 09:35:00
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0008_stale_deal_kind"
down_revision = "0007_call_participants"
branch_labels = None
depends_on = None

# What the rule wrote before: "Deal idle for 7 days: Поставка".
OLD_TITLE = re.compile(r"^Deal idle for (\d+) days: (.*)$", re.DOTALL)
tasks = sa.table(
    "tasks",
    sa.column("id", sa.Integer),
    sa.column("title", sa.String),
    sa.column("kind", sa.String),
    sa.column("params", sa.JSON),
    sa.column("source", sa.String),
)


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(tasks.c.id, tasks.c.title).where(
            tasks.c.source == "stale_deal", tasks.c.kind.is_(None)
        )
    ).all()
    for task_id, title in rows:
        found = OLD_TITLE.match(title)
        if found is None:
            continue
        days, deal = int(found.group(1)), found.group(2)
        bind.execute(
            tasks.update()
            .where(tasks.c.id == task_id)
            .values(title=deal, kind="stale_deal", params={"deal": deal, "days": days})
        )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(tasks.c.id, tasks.c.params).where(tasks.c.kind == "stale_deal")
    ).all()
    for task_id, params in rows:
        title = f"Deal idle for {params['days']} days: {params['deal']}"
        bind.execute(
            tasks.update().where(tasks.c.id == task_id).values(title=title, kind=None, params=None)
        )
