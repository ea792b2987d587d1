"""A message the SMSC took is not sent again when the worker sending it loses its claim:
its submit result still counts when it comes after the claim lapsed, a receipt adopted
while a claim takes the message leaves that claim alone, a receipt delivered twice
is still adopted, and a receipt answered before any part had its id is kept in the
database until one does (or it expires)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.clients.models import Client, ClientKind
from crm_api.messages.models import KeptReceipt, OutboxMessage, SmsPart
from crm_api.messages.outbox import claim_due_rows
from crm_api.messages.sms.delivery import apply_receipts, recover_abandoned
from crm_api.messages.sms.service import KEPT_TTL, UNKNOWN_RECEIPT_GRACE, SmsService, _Waiting
from crm_api.platform.db.base import utcnow
from crm_api.platform.realtime.bus import InProcessBus
from crm_api.platform.realtime.hub import Hub
from sms_gateway.gateway import Incoming
from sms_gateway.types import DeliveryReceipt, PartResult, SendResult

NUMBER = "+79265000003"
HOLD = timedelta(seconds=4)


async def _message(session: AsyncSession, **values: Any) -> int:
    client = Client(kind=ClientKind.PERSON, name="Crash 0003", search_name="crash 0003")
    session.add(client)
    await session.flush()
    message = OutboxMessage(
        channel="sms", client_id=client.id, to_address=NUMBER, body="Crash 0003: новости"
    )
    for name, value in values.items():
        setattr(message, name, value)
    session.add(message)
    await session.commit()
    return message.id


def _receipt() -> DeliveryReceipt:
    return DeliveryReceipt("smsc-4", "DELIVRD", "delivered", handset=NUMBER.lstrip("+"))


def _service(db: async_sessionmaker[AsyncSession]) -> SmsService:
    return SmsService(
        db,
        Hub(InProcessBus()),
        cast(Any, SimpleNamespace(connected=True, state_listeners=[])),
        region="RU",
    )


async def _claimed(db: async_sessionmaker[AsyncSession], after: timedelta) -> list[int]:
    async with db() as session:
        rows = await claim_due_rows(
            session, "sms", utcnow() + after, 10, (OutboxMessage.id,), reclaim_expired=False
        )
    return [r.id for r in rows]


async def test_a_submit_result_written_after_the_claim_lapsed_keeps_the_message_from_going_again(
    db: async_sessionmaker[AsyncSession],
) -> None:
    # The worker stalled past its claim: another round of recovery (its own, or another
    # worker's) put the message to wait for its receipts before the result was written.
    async with db() as session:
        mid = await _message(
            session, status="sending", claimed_until=utcnow() - timedelta(seconds=1)
        )
        assert await recover_abandoned(session, utcnow(), HOLD) == 1
        await session.commit()
    service = SmsService(
        db,
        Hub(InProcessBus()),
        cast(Any, SimpleNamespace(connected=True, state_listeners=[])),
        region="RU",
    )
    accepted = SendResult("submitted", (PartResult(0, "smsc-4", 0),))
    changes = await service._write_results([(mid, accepted)])

    assert [(c.message.id, c.status) for c in changes] == [(mid, "submitted")]
    async with db() as session:
        message = await session.get(OutboxMessage, mid)
        assert message is not None
        assert (message.status, message.parts) == (
            "submitted",
            [{"index": 0, "message_id": "smsc-4", "status": "submitted"}],
        )
        parts = (await session.scalars(select(SmsPart.smsc_message_id))).all()
        assert parts == ["smsc-4"]
    # Its hold over, nothing is sent again; its receipt finds its part.
    assert await _claimed(db, HOLD * 2) == []
    async with db() as session:
        moved, unknown = await apply_receipts(session, [_receipt()], utcnow())
        await session.commit()
    assert ([c.status for c in moved], unknown) == (["delivered"], set())


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_receipt_adopted_while_a_claim_takes_its_message_leaves_the_claim_alone(
    db: async_sessionmaker[AsyncSession],
) -> None:
    # The message waits for its receipts (its worker was killed after the submit, before
    # the result was written); its hold just ended. The receipt comes in as another
    # worker's claim takes the message: one of the two must win, never both.
    async with db() as session:
        mid = await _message(
            session,
            status="uncertain",
            next_attempt_at=utcnow() - timedelta(seconds=1),
            parts=[{"index": 0, "message_id": None, "status": "unknown"}],
        )
    receipt = _receipt()
    async with db() as claiming:
        # claim_due_rows' UPDATE, its transaction still open.
        await claiming.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == mid, OutboxMessage.status == "uncertain")
            .values(status="sending", claimed_until=utcnow() + timedelta(seconds=60))
        )

        async def adopting() -> tuple[list[str], set[str]]:
            async with db() as session:
                moved, unknown = await apply_receipts(session, [receipt], utcnow(), hold=HOLD)
                await session.commit()
            return [c.status for c in moved], unknown

        adoption = asyncio.create_task(adopting())
        await asyncio.sleep(0.5)  # the adoption reads, then waits on the claim's lock
        await claiming.commit()
        moved, unknown = await asyncio.wait_for(adoption, 10)

    # The claim won: its worker sends the message; the receipt stays unmatched.
    assert (moved, unknown) == ([], {"smsc-4"})
    async with db() as session:
        message = await session.get(OutboxMessage, mid)
        assert message is not None
        assert (message.status, message.parts) == (
            "sending",
            [{"index": 0, "message_id": None, "status": "unknown"}],
        )


async def test_a_receipt_delivered_twice_in_one_batch_is_adopted_once(
    db: async_sessionmaker[AsyncSession],
) -> None:
    # The copy the dead session left unanswered waits for the next try while the SMSC
    # delivers it again on the new session: both come in one batch.
    async with db() as session:
        mid = await _message(
            session,
            status="uncertain",
            next_attempt_at=utcnow() + HOLD,
            parts=[{"index": 0, "message_id": None, "status": "unknown"}],
        )
        moved, unknown = await apply_receipts(session, [_receipt(), _receipt()], utcnow())
        await session.commit()
    assert ([(c.message.id, c.status) for c in moved], unknown) == ([(mid, "delivered")], set())
    assert await _claimed(db, HOLD * 2) == []


async def test_a_receipt_answered_before_its_result_is_kept_until_the_result_comes(
    db: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    async with db() as session:
        mid = await _message(
            session, status="sending", claimed_until=utcnow() + timedelta(seconds=60)
        )
    stray = DeliveryReceipt("smsc-9", "DELIVRD", "delivered", handset="79265000009")
    # Both receipts found no part through their grace: kept, and to be answered.
    service = _service(db)
    since = time.monotonic()
    waiting = [_Waiting(Incoming(r, ()), since) for r in (_receipt(), stray)]
    unanswered, _, moved = await service._write_incoming(
        waiting, since + UNKNOWN_RECEIPT_GRACE + 0.1
    )
    assert (unanswered, moved) == (set(), [])

    # The worker is gone with its memory; its result is written late (by it, before it
    # died, or as the next worker's record of the submit): the kept receipt applies.
    service = _service(db)
    accepted = SendResult("submitted", (PartResult(0, "smsc-4", 0),))
    await service._write_results([(mid, accepted)])
    await service._retry_kept(time.monotonic())
    async with db() as session:
        message = await session.get(OutboxMessage, mid)
        assert message is not None and message.status == "delivered"
        assert (await session.scalars(select(KeptReceipt.smsc_message_id))).all() == ["smsc-9"]
        # The one no message takes is dropped once it is old, said in the log.
        await session.execute(
            update(KeptReceipt).values(received_at=utcnow() - KEPT_TTL - timedelta(seconds=1))
        )
        await session.commit()
    with caplog.at_level(logging.WARNING, logger="crm_api.messages.sms.service"):
        await service._retry_kept(time.monotonic())
    assert "SMS receipt smsc-9 (DELIVRD, to 79265000009) dropped" in caplog.text
    async with db() as session:
        assert (await session.scalars(select(KeptReceipt))).all() == []
