"""The audit log: one entry per change, with each changed field's before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.audit_models import AuditEntry
from crm_api.accounts.models import User


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    keys = before.keys() | after.keys()
    return {k: [before.get(k), after.get(k)] for k in sorted(keys) if before.get(k) != after.get(k)}


def record(
    session: AsyncSession,
    actor: User | None,
    *,
    action: str,
    entity: str,
    entity_id: int,
    client_id: int | None,
    changes: dict[str, Any],
) -> None:
    session.add(
        AuditEntry(
            user_id=actor.id if actor else None,
            action=action,
            entity=entity,
            entity_id=entity_id,
            client_id=client_id,
            changes=changes,
        )
    )


async def client_history(session: AsyncSession, client_id: int) -> list[AuditEntry]:
    """The card's last 500 changes, newest first, each with its author loaded."""
    rows = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.client_id == client_id)
        .order_by(AuditEntry.id.desc())
        .limit(500)
    )
    entries = list(rows.all())
    for entry in entries:
        await session.refresh(entry, ["user"])
    return entries
