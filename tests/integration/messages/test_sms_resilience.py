"""The SMSC misbehaves (throttles, refuses the bind, dies in the middle of a bulk send),
and so does the database (cut under the SMS worker)."""

from __future__ import annotations

import asyncio
import collections
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.publish_faults import FailOnce
from support.servers import PgServer
from support.sms import make_clients, sms_stack
from support.smsc import SmscProcess
from support.tcp_proxy import CuttableProxy
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.messages.models import BulkSend
from crm_api.messages.sms.bulk import ProgressNotifier
from crm_api.platform.db.session import make_engine, make_sessionmaker
from crm_api.platform.realtime.bus import InProcessBus
from crm_api.platform.realtime.frames import Frame
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.settings import Settings
from sms_gateway import InboundSms, OutgoingSms, SmppConfig, SmsGateway


async def _report(http: httpx.AsyncClient, bulk_id: int) -> dict[str, Any]:
    r = await http.get(f"/sms/bulk/{bulk_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_throttled_submits_are_retried_and_every_message_goes_once(
    settings: Settings, tmp_path: Path, actors: dict[Role, Actor]
) -> None:
    smsc = SmscProcess(tmp_path / "smsc.jsonl", "--throttle-every", "4")
    await smsc.start()
    try:
        async with (
            sms_stack(settings, smsc) as api,
            api.client(actors[Role.SUPERVISOR].token) as http,
        ):
            cards = await make_clients(http, 20, prefix="Throttle")
            sent = []
            for card in cards:
                r = await http.post(f"/clients/{card['id']}/sms", json={"text": f"Hi {card['id']}"})
                assert r.status_code == 202
                sent.append(r.json()["id"])

            async def all_delivered() -> bool:
                statuses = {(await http.get(f"/messages/{i}")).json()["status"] for i in sent}
                return statuses == {"delivered"}

            await wait_for(all_delivered, within=30)
        accepted = collections.Counter(r["dest"] for r in smsc.rows("submit"))
        assert len(accepted) == 20 and set(accepted.values()) == {1}
        # Throttling really happened: the SMSC refused every 4th submit_sm.
        assert len(smsc.rows("throttled")) >= 5
    finally:
        await smsc.kill()


async def test_wrong_password_is_a_clear_error_and_the_gateway_keeps_trying(
    tmp_path: Path,
) -> None:
    smsc = SmscProcess(tmp_path / "smsc.jsonl", password="right")
    await smsc.start()
    config = SmppConfig.from_url(smsc.url.replace(":right@", ":wrong@"), reconnect_min=0.1)
    gateway = SmsGateway(config)
    await gateway.start()
    try:
        assert not await gateway.wait_bound(1.5)
        assert gateway.bind_attempts >= 3  # backoff 0.1, 0.2, 0.4 s…
        assert "ESME_RINVPASWD" in (gateway.last_error or "")
        result = await gateway.send(OutgoingSms("79161234567", "never"))
        assert result.outcome == "retry" and "ESME_RINVPASWD" in (result.error or "")
        assert smsc.rows("submit") == []
    finally:
        await gateway.stop()
        await smsc.kill()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_smsc_killed_mid_bulk_and_restarted_delivers_every_message_once(
    settings: Settings, tmp_path: Path, actors: dict[Role, Actor]
) -> None:
    count = 300
    smsc = SmscProcess(tmp_path / "smsc.jsonl", "--dlr-tlv")
    await smsc.start()
    supervisor = actors[Role.SUPERVISOR]
    try:
        async with (
            sms_stack(settings, smsc, smpp_enquire_link_s=1.0) as api,
            api.client(supervisor.token) as http,
        ):
            await make_clients(http, count, prefix="Bulk")
            # A part the SMSC never stored gets no receipt: send it again sooner. The hold
            # still outlasts the SMSC's restart, rebind and receipts on a busy machine (at
            # 3 s, a run at load 8 sent 7 stored parts twice).
            api.app.state.services.links.sms_outbox.uncertain_hold = timedelta(seconds=10)
            async with open_socket(api.ws_url, supervisor.token) as ws:
                sock = Socket(ws)
                await sock.next_of("hello")
                r = await http.post(
                    "/sms/bulk",
                    json={
                        "text": "{name}, скидка 10% до пятницы",
                        "filters": {"q": "Bulk"},
                        "rate": 400,
                    },
                )
                assert r.status_code == 202, r.text
                bulk = r.json()
                assert bulk["total"] == count
                progress = await sock.next_of("sms.bulk.progress", within=15)
                assert progress["data"]["bulk_id"] == bulk["id"]

                await wait_for(lambda: _at_least(smsc, count // 3), within=20, step=0.01)
                await smsc.kill()  # SIGKILL: no unbind, answers in flight are lost
                mid = await _report(http, bulk["id"])
                assert mid["delivered"] < count
                await asyncio.sleep(1.0)
                await smsc.start()

                async def done() -> bool:
                    return (await _report(http, bulk["id"]))["delivered"] == count

                await wait_for(done, within=60, step=0.3)
                final = await _report(http, bulk["id"])
                assert final["failed"] == 0 and final["pending"] == 0 and final["sent"] == count
                done_frame = await sock.next_of("sms.bulk.done", within=10)
                assert done_frame["data"]["delivered"] == count
    finally:
        await smsc.kill()
    per_dest = collections.Counter(r["dest"] for r in smsc.rows("submit"))
    assert len(per_dest) == count
    duplicates = {d: n for d, n in per_dest.items() if n > 1}
    print(
        f"\nSMSC accepted {sum(per_dest.values())} submit_sm for {count} messages; "
        f"resent after the kill: {len(duplicates)}"
    )
    assert duplicates == {}


async def _at_least(smsc: SmscProcess, n: int) -> bool:
    return len(smsc.rows("submit")) >= n


async def test_a_frozen_smsc_is_detected_by_enquire_link_and_the_gateway_rebinds(
    tmp_path: Path,
) -> None:
    smsc = SmscProcess(tmp_path / "smsc.jsonl")
    await smsc.start()
    config = SmppConfig.from_url(
        smsc.url,
        enquire_link_every=0.3,
        dead_link_after=1.0,
        reconnect_min=0.2,
        connect_timeout=1.0,
    )
    gateway = SmsGateway(config)
    await gateway.start()
    assert smsc.proc is not None
    try:
        assert await gateway.wait_bound(5)
        smsc.proc.send_signal(signal.SIGSTOP)  # alive to TCP, silent to SMPP

        async def dropped() -> bool:
            return not gateway.connected

        await wait_for(dropped, within=10)
        assert "enquire_link not answered" in (gateway.last_error or "")
        smsc.proc.send_signal(signal.SIGCONT)
        assert await gateway.wait_bound(15), gateway.last_error
        result = await gateway.send(OutgoingSms("79161234567", "after the freeze"))
        assert result.outcome == "submitted"
    finally:
        if smsc.proc is not None:
            smsc.proc.send_signal(signal.SIGCONT)
        await gateway.stop()
        await smsc.kill()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_database_cut_is_said_once_and_every_message_still_goes_once(
    settings: Settings,
    tmp_path: Path,
    actors: dict[Role, Actor],
    pg_server: PgServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    count = 20
    # Receipts come a second after the submits: they arrive while the database is cut.
    smsc = SmscProcess(tmp_path / "smsc.jsonl", "--dlr-delay", "1.0")
    await smsc.start()
    pg = f"@{pg_server.host}:{pg_server.port}/"
    try:
        async with CuttableProxy(pg_server.host, pg_server.port) as link:
            url = settings.database_url.replace(pg, f"@127.0.0.1:{link.port}/")
            async with (
                sms_stack(settings.model_copy(update={"database_url": url}), smsc) as api,
                api.client(actors[Role.SUPERVISOR].token) as http,
            ):
                cards = await make_clients(http, count, prefix="Cut")
                sent = []
                for card in cards:
                    r = await http.post(f"/clients/{card['id']}/sms", json={"text": "Ждём вас"})
                    assert r.status_code == 202, r.text
                    sent.append(r.json()["id"])
                await wait_for(lambda: _at_least(smsc, count), within=20, step=0.05)
                await link.cut()
                await asyncio.sleep(3.0)  # the receipts and the loops' polls meet the cut
                await link.restore()

                async def all_delivered() -> bool:
                    statuses = {(await http.get(f"/messages/{i}")).json()["status"] for i in sent}
                    return statuses == {"delivered"}

                await wait_for(all_delivered, within=30, step=0.2)
    finally:
        await smsc.kill()
    per_dest = collections.Counter(r["dest"] for r in smsc.rows("submit"))
    assert len(per_dest) == count and set(per_dest.values()) == {1}
    records = [r for r in caplog.records if r.name.startswith("crm_api.messages")]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    said = [r.getMessage() for r in records if "SMS worker: the database" in r.getMessage()]
    assert len(said) == 2, said
    assert "unavailable (" in said[0] and " back after " in said[1], said


async def test_a_received_text_delivered_again_after_a_reconnect_keeps_its_reference(
    tmp_path: Path,
) -> None:
    """An MO without an SMSC message id, unanswered when the link died, comes again on the
    next session: it keeps its reference (stored once), and the same text sent again
    later is a new message."""
    smsc = SmscProcess(tmp_path / "smsc.jsonl")
    await smsc.start()
    config = SmppConfig.from_url(
        smsc.url, enquire_link_every=0.3, dead_link_after=1.0, reconnect_min=0.2
    )
    gateway = SmsGateway(config)
    await gateway.start()
    assert smsc.proc is not None
    try:
        assert await gateway.wait_bound(5)
        await smsc.send_mo("79161234567", "Да")
        (first,) = await gateway.batch(wait=10)
        assert isinstance(first.item, InboundSms) and first.item.ref.startswith("seq:")
        # Stored, not yet answered, and the link dies: the SMSC never hears of it.
        smsc.proc.send_signal(signal.SIGSTOP)

        async def dropped() -> bool:
            return not gateway.connected

        await wait_for(dropped, within=10)
        smsc.proc.send_signal(signal.SIGCONT)
        assert await gateway.wait_bound(15), gateway.last_error
        (again,) = await gateway.batch(wait=15)
        assert again.item == first.item
        gateway.ack(again)
        await wait_for(lambda: _mo_acknowledged(smsc, 1), within=10)

        await smsc.send_mo("79161234567", "Да")  # the client answers the same once more
        (second,) = await gateway.batch(wait=10)
        assert isinstance(second.item, InboundSms) and second.item.text == "Да"
        assert second.item.ref != first.item.ref
    finally:
        if smsc.proc is not None:
            smsc.proc.send_signal(signal.SIGCONT)
        await gateway.stop()
        await smsc.kill()


async def _mo_acknowledged(smsc: SmscProcess, n: int) -> bool:
    return len(smsc.rows("mo")) >= n


async def _bulk_with_nothing_pending(
    db: async_sessionmaker[AsyncSession], user_id: int
) -> BulkSend:
    async with db() as session:
        bulk = BulkSend(user_id=user_id, body="Скидка", rate=10.0, total=0)
        session.add(bulk)
        await session.commit()
    return bulk


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_bulk_whose_last_receipt_meets_a_database_cut_is_done_when_it_is_back(
    settings: Settings,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    pg_server: PgServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last change of a bulk comes while the database is cut: its progress is retried
    until the database is back, then the bulk is done and its sender told, once; nothing
    else would come to mark it done."""
    sender = actors[Role.MANAGER].user
    bulk = await _bulk_with_nothing_pending(db, sender.id)
    frames: list[Frame] = []
    pg = f"@{pg_server.host}:{pg_server.port}/"
    async with CuttableProxy(pg_server.host, pg_server.port) as link:
        engine = make_engine(settings.database_url.replace(pg, f"@127.0.0.1:{link.port}/"))
        progress = ProgressNotifier(
            make_sessionmaker(engine), Hub(InProcessBus(), published=frames.append), every=0.2
        )
        try:
            await link.cut()
            await progress.changed(bulk.id)
            await asyncio.sleep(1.0)  # several attempts meet the cut
            assert frames == []
            await link.restore()

            async def told() -> bool:
                return any(f.type == "sms.bulk.done" for f in frames)

            await wait_for(told, within=10)
        finally:
            await progress.close()
            await engine.dispose()
    assert [f.type for f in frames] == ["sms.bulk.progress", "sms.bulk.done"]
    assert frames[-1].audience.user_ids == {sender.id}
    async with db() as session:
        assert (await session.get(BulkSend, bulk.id)).status == "done"  # type: ignore[union-attr]
    said = [r.getMessage() for r in caplog.records if "bulk SMS progress" in r.getMessage()]
    assert len(said) == 2 and "unavailable (" in said[0] and " back after " in said[1], said
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_a_bulk_done_frame_that_met_a_bus_outage_goes_out_on_the_retry(
    actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    """The bulk was marked done, then the bus failed before `sms.bulk.done` went out: the
    retry finds the bulk done already and still tells its sender."""
    sender = actors[Role.MANAGER].user
    bulk = await _bulk_with_nothing_pending(db, sender.id)
    frames: list[Frame] = []
    hub = Hub(InProcessBus(), published=frames.append)
    fault = FailOnce(hub, "sms.bulk.done", RedisConnectionError("Connection reset by peer"))
    progress = ProgressNotifier(db, hub, every=0.2)
    try:
        await progress.changed(bulk.id)

        async def told() -> bool:
            return any(f.type == "sms.bulk.done" for f in frames)

        await wait_for(told, within=10)
    finally:
        await progress.close()
    assert fault.failed, "the done frame never met the outage"
    assert [f.type for f in frames].count("sms.bulk.done") == 1
