"""SMS from and to the card through a real SMSC (smpp34's Server in its own process)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi
from support.sms import make_client
from support.smsc import SmscProcess
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.messages.models import OutboxMessage

TEXT = (
    "{first_name}, здравствуйте! Ваш заказ собран и ждёт вас в пункте выдачи на Тверской, 12. "
    "Хранение — 7 дней. Вопросы: +7 495 000-00-00. Спасибо, что выбираете нас!"
)


def decode_parts(rows: list[dict[str, Any]]) -> str:
    """Independent of the code under test: strip the UDH by its length octet, order by
    the sequence octet, decode UTF-16."""
    chunks = []
    for row in rows:
        sm = bytes.fromhex(row["sm"])
        if row["esm"] & 0x40:
            udh_len = sm[0]
            seq = sm[udh_len]  # last octet of the 8-bit concatenation IE
            chunks.append((seq, sm[udh_len + 1 :]))
        else:
            chunks.append((1, sm))
    return b"".join(c for _, c in sorted(chunks)).decode("utf-16-be")


async def test_cyrillic_long_sms_arrives_as_parts_and_receipts_mark_it_delivered(
    sms_api: RunningApi, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    async with sms_api.client(manager.token) as http:
        card = await make_client(
            http, "Петрова Анна Сергеевна", "8 916 123-45-67", manager_id=manager.user.id
        )
        async with open_socket(sms_api.ws_url, manager.token) as ws:
            sock = Socket(ws)
            await sock.next_of("hello")
            r = await http.post(f"/clients/{card['id']}/sms", json={"text": TEXT})
            assert r.status_code == 202, r.text
            sent = r.json()
            assert sent["status"] == "queued"
            assert sent["body"].startswith("Анна, здравствуйте!")
            statuses = []
            while True:
                frame = await sock.next_of("sms.status", within=15)
                statuses.append(frame["data"]["status"])
                if frame["data"]["status"] == "delivered":
                    break
            assert statuses[0] == "submitted"
            assert frame["data"]["communication_id"] == sent["communication_id"]

        rows = [r for r in smsc.rows("submit") if r["dest"] == "79161234567"]
        assert len(rows) == 3  # 153 Cyrillic characters: three UCS-2 parts
        assert {r["dc"] for r in rows} == {8}
        assert {r["rd"] & 1 for r in rows} == {1}  # receipts requested
        assert decode_parts(rows) == sent["body"]

        message = (await http.get(f"/messages/{sent['id']}")).json()
        assert message["status"] == "delivered"
        assert sorted(p["message_id"] for p in message["parts"]) == sorted(r["id"] for r in rows)
        assert {p["status"] for p in message["parts"]} == {"delivered"}
        comms = (
            await http.get(f"/clients/{card['id']}/communications", params={"kind": "sms"})
        ).json()["items"]
        assert [(c["direction"], c["status"]) for c in comms] == [("outbound", "delivered")]


async def test_undelivered_receipt_fails_the_message(
    sms_api: RunningApi, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    async with sms_api.client(actors[Role.OPERATOR].token) as http:
        card = await make_client(http, "Abonent", "+7 916 000-00-00")  # the SMSC cannot reach it
        sent = (await http.post(f"/clients/{card['id']}/sms", json={"text": "hi"})).json()

        async def final() -> str | None:
            status = (await http.get(f"/messages/{sent['id']}")).json()["status"]
            return str(status) if status in ("delivered", "failed") else None

        assert await wait_for(final) == "failed"
        message = (await http.get(f"/messages/{sent['id']}")).json()
        assert "failed" in message["last_error"]


async def test_idempotency_key_sends_once_and_bad_input_writes_nothing(
    sms_api: RunningApi,
    smsc: SmscProcess,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with sms_api.client(actors[Role.OPERATOR].token) as http:
        card = await make_client(http, "Smith John", "+7 916 222-33-44")
        url = f"/clients/{card['id']}/sms"
        first = await http.post(url, json={"text": "Hello"}, headers={"Idempotency-Key": "k-1"})
        again = await http.post(url, json={"text": "Hello"}, headers={"Idempotency-Key": "k-1"})
        assert (first.status_code, again.status_code) == (202, 200)
        assert first.json()["id"] == again.json()["id"]
        other = await http.post(url, json={"text": "Hello"}, headers={"Idempotency-Key": "k-2"})
        assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
        # A double click: both requests at once, one message.
        twins = await asyncio.gather(
            *(http.post(url, json={"text": "Hi"}, headers={"Idempotency-Key": "k-3"}) for _ in "ab")
        )
        assert sorted(t.status_code for t in twins) == [200, 202], twins
        assert twins[0].json()["id"] == twins[1].json()["id"]

        bad_phone = await http.post(url, json={"text": "x", "phone": "+7 916 999-99-99"})
        assert bad_phone.status_code == 422
        assert bad_phone.json()["error"]["details"]["fields"][0]["field"] == "phone"
        empty = await http.post(url, json={"text": ""})
        assert empty.status_code == 422
        # An empty key (a form that never made one) is refused, not a 500 on the second send.
        for _ in "ab":
            no_key = await http.post(url, json={"text": "x"}, headers={"Idempotency-Key": ""})
            assert no_key.status_code == 422, no_key.text
            assert no_key.json()["error"]["code"] == "validation_error"
        missing_client = await http.post("/clients/999999/sms", json={"text": "x"})
        assert missing_client.status_code == 404

        async with db() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.client_id == card["id"])
            )
        assert count == 3

        async def both_delivered() -> bool:
            statuses = [
                (await http.get(f"/messages/{r.json()['id']}")).json()["status"]
                for r in (first, other, twins[0])
            ]
            return statuses == ["delivered"] * 3

        await wait_for(both_delivered)
        assert len([r for r in smsc.rows("submit") if r["dest"] == "79162223344"]) == 3


async def test_inbound_sms_lands_on_the_card_and_stop_opts_out(
    sms_api: RunningApi, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    long_text = "Добрый день! Хочу перенести доставку на субботу, после обеда. " * 3
    async with sms_api.client(manager.token) as http:
        card = await make_client(
            http, "Иванов Пётр", "+7 916 555-66-77", manager_id=manager.user.id
        )
        async with open_socket(sms_api.ws_url, manager.token) as ws:
            sock = Socket(ws)
            await sock.next_of("hello")
            await smsc.send_mo("79165556677", long_text)
            frame = await sock.next_of("sms.received", within=15)
            assert frame["data"]["client_id"] == card["id"]
            assert frame["data"]["text"] == long_text  # three parts reassembled
            assert frame["data"]["new_card"] is False

            await smsc.send_mo("79165556677", " СТОП ")
            frame = await sock.next_of("sms.received", within=15)
            assert frame["data"]["opted_out"] is True

        comms = (
            await http.get(f"/clients/{card['id']}/communications", params={"kind": "sms"})
        ).json()["items"]
        assert sorted(c["body"] for c in comms) == sorted([long_text, " СТОП "])
        assert {c["direction"] for c in comms} == {"inbound"}
        refused = await http.post(f"/clients/{card['id']}/sms", json={"text": "Акция!"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "client_opted_out"
        comms_after = (
            await http.get(f"/clients/{card['id']}/communications", params={"kind": "sms"})
        ).json()["items"]
        assert len(comms_after) == 2  # nothing queued


async def test_sms_from_an_unknown_number_makes_a_card(
    sms_api: RunningApi, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    operator = actors[Role.OPERATOR]
    async with open_socket(sms_api.ws_url, operator.token) as ws:
        sock = Socket(ws)
        await sock.next_of("hello")
        await smsc.send_mo("79037778899", "Перезвоните мне, пожалуйста")
        frame = await sock.next_of("sms.received", within=15)
    assert frame["data"]["new_card"] is True
    async with sms_api.client(operator.token) as http:
        card = (await http.get(f"/clients/{frame['data']['client_id']}")).json()
        assert card["phones"][0]["e164"] == "+79037778899"
        assert card["lead_source"]["name"] == "Входящее SMS"


async def test_sms_and_email_without_a_gateway_are_refused_with_a_code(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    """No CALLCARD_SMPP_URL / CALLCARD_SMTP_HOST: nothing is queued to wait forever."""
    async with api.client(actors[Role.MANAGER].token) as http:
        card = await make_client(
            http, "Без шлюза", "+7 916 222-33-45", emails=[{"email": "a@b.ru"}]
        )
        sms = await http.post(f"/clients/{card['id']}/sms", json={"text": "x"})
        email = await http.post(f"/clients/{card['id']}/email", json={"subject": "s", "text": "x"})
        links = (await http.get("/links")).json()
    assert (sms.status_code, sms.json()["error"]["code"]) == (503, "sms_not_configured")
    assert (email.status_code, email.json()["error"]["code"]) == (503, "email_not_configured")
    assert links["smsc"] == {"configured": False, "up": None, "since": None}
    assert links["email"]["configured"] is False
    async with db() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.client_id == card["id"])
        )
    assert count == 0


async def test_the_smsc_link_is_reported_live(
    sms_api: RunningApi, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    async with sms_api.client(actors[Role.MANAGER].token) as http:

        async def smsc_up() -> bool:
            return bool((await http.get("/links")).json()["smsc"]["up"])

        await wait_for(smsc_up)  # the bind is told a moment after it is made
        async with open_socket(sms_api.ws_url, actors[Role.MANAGER].token) as ws:
            sock = Socket(ws)
            await sock.next_of("hello")
            await smsc.kill()
            frame = await sock.next_of("link.status", within=20)
            assert frame["data"]["name"] == "smsc"
            assert frame["data"]["link"]["up"] is False
        assert (await http.get("/links")).json()["smsc"]["up"] is False
