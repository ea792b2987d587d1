"""Delivery receipts acknowledged to the SMSC before any part had their id: the SMSC will
not deliver them again, so they are written down before the answer and matched again
until a part takes them (its submit result is written, or a message in doubt adopts
them), then forgotten."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.messages.models import KeptReceipt
from sms_gateway.types import DeliveryReceipt


async def keep(session: AsyncSession, receipts: Sequence[DeliveryReceipt], now: datetime) -> None:
    """Writes them (a copy of one already kept changes nothing), in one statement."""
    if not receipts:
        return
    rows = [
        {
            "smsc_message_id": r.message_id,
            # Cut to the columns: one odd receipt must not cost the batch its commit.
            "handset": r.handset[:32],
            "stat": r.stat[:16],
            "outcome": r.outcome,
            "error": r.error[:100] if r.error else None,
            "received_at": now,
        }
        for r in {r.message_id: r for r in receipts}.values()
    ]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(KeptReceipt).values(rows).on_conflict_do_nothing(index_elements=["smsc_message_id"])
    )


async def kept(session: AsyncSession, limit: int) -> list[tuple[DeliveryReceipt, datetime]]:
    """The oldest kept receipts, with when they came. On PostgreSQL they are locked, and
    those another worker is matching are skipped: a receipt is applied by one at a time."""
    rows = await session.execute(
        select(KeptReceipt)
        .order_by(KeptReceipt.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [
        (DeliveryReceipt(k.smsc_message_id, k.stat, k.outcome, k.error, k.handset), k.received_at)
        for k in rows.scalars()
    ]


async def forget(session: AsyncSession, smsc_ids: Collection[str]) -> None:
    if smsc_ids:
        await session.execute(
            delete(KeptReceipt)
            .where(KeptReceipt.smsc_message_id.in_(smsc_ids))
            .execution_options(synchronize_session=False)
        )
