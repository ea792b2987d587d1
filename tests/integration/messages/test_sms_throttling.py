"""An SMSC that throttles above a rate, loses receipts and receives two equal replies:
every message reaches it exactly once, none is left waiting, both replies are kept."""

from __future__ import annotations

import collections
from pathlib import Path

from sqlalchemy import func, select
from support.factories import Actor
from support.sms import make_clients, sms_stack
from support.smsc import SmscProcess
from support.waiting import wait_for

from crm_api.accounts.models import Role
from crm_api.clients.timeline.models import CommDirection, Communication
from crm_api.platform.settings import Settings


async def test_throttled_and_receiptless_messages_go_once_and_equal_replies_stay_two(
    settings: Settings, tmp_path: Path, actors: dict[Role, Actor]
) -> None:
    count = 60
    # 10 submit_sm/s at most; every 7th accepted message never gets its receipt.
    smsc = SmscProcess(tmp_path / "smsc.jsonl", "--max-rate", "10", "--lose-receipts-every", "7")
    await smsc.start()
    try:
        # A 4 s claim: parts queued behind the throttle outlive it many times over.
        async with (
            sms_stack(settings, smsc, sms_claim_s=4.0, sms_receipt_overdue_s=1.0) as api,
            api.client(actors[Role.SUPERVISOR].token) as http,
        ):
            await make_clients(http, count, prefix="Throttle")
            # Queued at once (a bulk send at 1,000/s): far above what the SMSC takes.
            r = await http.post(
                "/sms/bulk",
                json={"text": "Ваш код 1234", "filters": {"q": "Throttle"}, "rate": 1000},
            )
            assert r.status_code == 202, r.text
            bulk = r.json()
            assert bulk["total"] == count

            async def all_delivered() -> bool:
                report = (await http.get(f"/sms/bulk/{bulk['id']}")).json()
                return bool(report["delivered"] == count and report["pending"] == 0)

            await wait_for(all_delivered, within=90, step=0.5)

            await smsc.send_mo("79165550101", "Да")
            await smsc.send_mo("79165550101", "Да")

            async def replies() -> int:
                async with api.app.state.services.sessions() as session:
                    return int(
                        await session.scalar(
                            select(func.count()).where(
                                Communication.direction == CommDirection.INBOUND,
                                Communication.body == "Да",
                            )
                        )
                        or 0
                    )

            await wait_for(lambda: _equals(replies, 2), within=20)
    finally:
        await smsc.kill()
    accepted = collections.Counter(r["dest"] for r in smsc.rows("submit"))
    assert len(accepted) == count
    assert {d: n for d, n in accepted.items() if n > 1} == {}
    # The faults really happened: throttling, and receipts lost then asked for.
    assert len(smsc.rows("throttled")) > 0
    lost = {r["id"] for r in smsc.rows("lost")}
    assert len(lost) == count // 7
    assert lost <= {r["id"] for r in smsc.rows("query")}
    assert len(smsc.rows("mo")) == 2


async def _equals(check: object, value: int) -> bool:
    assert callable(check)
    return bool(await check() == value)
