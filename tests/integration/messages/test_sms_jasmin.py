"""Interop with an SMPP server nobody here wrote: Callcard → Jasmin 0.11.0's SMPP server
(its user throttled to 20 submit_sm/s) → the test SMSC. Long Cyrillic messages go once
each part, every receipt comes back through Jasmin, and two equal replies sent upstream
reach the card as two messages. Jasmin needs RabbitMQ (127.0.0.1:5672) and Redis (the
suite's own); without them the test skips, and fails under CI=true."""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from support.factories import Actor
from support.jasmin import (
    Jasmind,
    JasminUnavailable,
    JCli,
    add_connector,
    ensure_venv,
    peers_missing,
)
from support.peers import missing
from support.sms import make_clients, sms_stack
from support.smsc import SmscProcess
from support.waiting import wait_for

from crm_api.accounts.models import Role
from crm_api.clients.timeline.models import CommDirection, Communication
from crm_api.platform.settings import Settings

pytestmark = [pytest.mark.timeout(600)]  # the first run installs Jasmin into its venv

USER, PASSWORD = "callcard", "jpass"
TEXT = (
    "{name}, напоминаем: ваш заказ собран и ждёт вас в пункте выдачи на Лесной улице до "
    "пятницы включительно. Возьмите с собой паспорт или код из приложения."
)  # UCS-2, more than two parts of 67 characters


@pytest.fixture
async def jasmin_smpp(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[SmscProcess, int]]:
    """The test SMSC and Jasmin bound to it; yields the SMSC and Jasmin's SMPP port."""
    redis = urlsplit(redis_url)
    peer = (redis.hostname or "127.0.0.1", redis.port or 6379)
    if why := peers_missing(peer):
        missing("Jasmin's peers", why)
    smsc = SmscProcess(tmp_path / "smsc.jsonl", "--dlr-tlv")
    await smsc.start()
    try:
        python = ensure_venv()
    except JasminUnavailable as e:
        await smsc.kill()
        missing("Jasmin", str(e))
        raise
    jasmind = Jasmind(python, tmp_path / "jasmin", redis=peer)
    await jasmind.start()
    cid = f"cc{uuid.uuid4().hex[:10]}"  # its queues on the shared RabbitMQ are this run's
    try:
        async with JCli.session(jasmind.ports["jcli"]) as cli:
            await add_connector(cli, cid, smsc.port, smsc.password)
            await cli.add("group -a", ["gid callcard"], b"Successfully added Group")
            await cli.add(
                "user -a",
                [
                    f"username {USER}",
                    f"password {PASSWORD}",
                    "gid callcard",
                    "uid callcard",
                    "mt_messaging_cred quota smpps_throughput 20",
                ],
                b"Successfully added User",
            )
            await cli.add(
                "mtrouter -a",
                ["type DefaultRoute", f"connector smppc({cid})", "rate 0.00"],
                b"Successfully added MTRoute",
            )
            await cli.add(
                "morouter -a",
                ["type DefaultRoute", f"connector smpps({USER})"],
                b"Successfully added MORoute",
            )
        yield smsc, jasmind.ports["smpp"]
    finally:
        await jasmind.stop()
        await smsc.kill()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_through_jasmin_long_messages_go_once_receipts_return_replies_stay_two(
    settings: Settings,
    jasmin_smpp: tuple[SmscProcess, int],
    actors: dict[Role, Actor],
) -> None:
    smsc, port = jasmin_smpp
    count = 20
    url = f"smpp://{USER}:{PASSWORD}@127.0.0.1:{port}"
    async with (
        sms_stack(settings, smsc, smpp_url=url) as api,
        api.client(actors[Role.SUPERVISOR].token) as http,
    ):
        await make_clients(http, count, prefix="Jasmin")
        r = await http.post(
            "/sms/bulk", json={"text": TEXT, "filters": {"q": "Jasmin"}, "rate": 1000}
        )
        assert r.status_code == 202, r.text
        bulk = r.json()
        assert bulk["total"] == count

        async def all_delivered() -> bool:
            report = (await http.get(f"/sms/bulk/{bulk['id']}")).json()
            return bool(report["delivered"] == count and report["pending"] == 0)

        await wait_for(all_delivered, within=180, step=0.5)
        # Jasmin did throttle Callcard (its user takes 20 submit_sm/s).
        assert api.app.state.services.links.sms_outbox.gateway.throttled > 0

        await smsc.send_mo("79165550102", "Да")
        await smsc.send_mo("79165550102", "Да")

        async def two_replies() -> bool:
            async with api.app.state.services.sessions() as session:
                n = await session.scalar(
                    select(func.count()).where(
                        Communication.direction == CommDirection.INBOUND,
                        Communication.body == "Да",
                    )
                )
            return n == 2

        await wait_for(two_replies, within=60, step=0.3)
    parts = collections.Counter(r["dest"] for r in smsc.rows("submit"))
    assert len(parts) == count
    # Every part of every message reached the SMSC once: three parts each, no copies.
    assert set(parts.values()) == {3}, parts
    assert len({r["sm"] for r in smsc.rows("submit")}) == 3 * count
