"""client_phones: the Russian words older databases keep as phone labels become the kinds
the UI names in the user's language (мобильный -> mobile); other labels are the user's own
words and stay as typed

Revision ID: 0011_phone_label_kinds
Revises: 0010_route_ask_pbx
Create Date: 2026-12-02 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_phone_label_kinds"
down_revision = "0010_route_ask_pbx"
branch_labels = None
depends_on = None

# The Russian names of the kinds the UI offers: what the demo seeded before it stored kinds
# (мобильный, рабочий), and what the card's label field, free text then, was typed with.
KINDS = {"мобильный": "mobile", "рабочий": "work", "домашний": "home"}
phones = sa.table("client_phones", sa.column("label", sa.String))


def kind_of(label: str) -> str | None:
    """The kind an old label names, whatever its case and surrounding spaces."""
    return KINDS.get(label.strip().lower())


def upgrade() -> None:
    bind = op.get_bind()
    # Matched in Python: SQLite's lower() folds ASCII letters only, not Cyrillic ones. One
    # update per distinct old spelling, however many phones carry it.
    labels = bind.execute(sa.select(phones.c.label).distinct().where(phones.c.label.is_not(None)))
    for (label,) in labels.all():
        kind = kind_of(label)
        if kind is not None:
            bind.execute(phones.update().where(phones.c.label == label).values(label=kind))


def downgrade() -> None:
    # Nothing to undo: the kinds are what the code before this revision stores too.
    pass
