"""E-mail from the card through a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

from email.header import decode_header, make_header

import httpx
from support.factories import Actor
from support.server import RunningApi
from support.sms import SmtpServer, make_client
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role


def _subject(raw: str) -> str:
    return str(make_header(decode_header(raw)))


async def _status(http: httpx.AsyncClient, message_id: int) -> str:
    return str((await http.get(f"/messages/{message_id}")).json()["status"])


async def test_email_from_the_card_arrives_and_is_an_email_communication(
    mail_api: RunningApi, smtp: SmtpServer, actors: dict[Role, Actor]
) -> None:
    smtp.start()
    manager = actors[Role.MANAGER]
    async with mail_api.client(manager.token) as http:
        card = await make_client(
            http,
            "Соколова Мария Ивановна",
            "+7 916 400-00-01",
            manager_id=manager.user.id,
            emails=[{"email": "Maria@Example.ru"}],
        )
        async with open_socket(mail_api.ws_url, manager.token) as ws:
            sock = Socket(ws)
            await sock.next_of("hello")
            r = await http.post(
                f"/clients/{card['id']}/email",
                json={"subject": "Счёт для {first_name}", "text": "{name}, счёт во вложении."},
                headers={"Idempotency-Key": "mail-1"},
            )
            assert r.status_code == 202, r.text
            sent = r.json()
            frame = await sock.next_of("email.status", within=15)
        assert frame["data"]["status"] == "sent"
        assert frame["data"]["outbox_id"] == sent["id"]

        assert len(smtp.box.messages) == 1
        mail = smtp.box.messages[0]
        assert _subject(mail["Subject"]) == "Счёт для Мария"
        assert mail["To"] == "maria@example.ru"
        assert mail["From"] == "crm@example.ru"
        assert mail["Message-ID"].startswith(f"<outbox-{sent['id']}.")
        assert mail.get_content().strip() == "Соколова Мария Ивановна, счёт во вложении."

        again = await http.post(
            f"/clients/{card['id']}/email",
            json={"subject": "x", "text": "y"},
            headers={"Idempotency-Key": "mail-1"},
        )
        assert again.status_code == 200 and again.json()["id"] == sent["id"]
        comms = (
            await http.get(f"/clients/{card['id']}/communications", params={"kind": "email"})
        ).json()["items"]
        assert [(c["status"], c["subject"]) for c in comms] == [("sent", "Счёт для Мария")]
        assert len(smtp.box.messages) == 1


async def test_email_waits_for_a_server_that_is_down_and_refusals_are_final(
    mail_api: RunningApi, smtp: SmtpServer, actors: dict[Role, Actor]
) -> None:
    async with mail_api.client(actors[Role.OPERATOR].token) as http:
        card = await make_client(
            http,
            "Client",
            "+7 916 400-00-02",
            emails=[{"email": "a@example.ru"}, {"email": "gone@example.ru"}],
        )
        r = await http.post(f"/clients/{card['id']}/email", json={"subject": "S", "text": "T"})
        first = r.json()

        async def retrying() -> bool:
            m = (await http.get(f"/messages/{first['id']}")).json()
            return m["status"] == "queued" and m["attempts"] >= 1 and bool(m["last_error"])

        await wait_for(retrying)  # nothing listens on the SMTP port yet
        smtp.start()
        await wait_for(lambda: _is(http, first["id"], "sent"), within=20)
        assert [m["To"] for m in smtp.box.messages] == ["a@example.ru"]

        smtp.box.refuse.add("gone@example.ru")
        r = await http.post(
            f"/clients/{card['id']}/email",
            json={"subject": "S", "text": "T", "to": "gone@example.ru"},
        )
        refused = r.json()
        await wait_for(lambda: _is(http, refused["id"], "failed"))
        m = (await http.get(f"/messages/{refused['id']}")).json()
        assert (m["attempts"] == 1 and "550" in m["last_error"]) or "refused" in m["last_error"]

        not_his = await http.post(
            f"/clients/{card['id']}/email", json={"subject": "S", "text": "T", "to": "x@y.ru"}
        )
        assert not_his.status_code == 422
        bare = await make_client(http, "No Mail", "+7 916 400-00-03")
        none = await http.post(f"/clients/{bare['id']}/email", json={"subject": "S", "text": "T"})
        assert none.status_code == 422
        assert none.json()["error"]["details"]["fields"][0]["field"] == "to"


async def _is(http: httpx.AsyncClient, message_id: int, status: str) -> bool:
    return await _status(http, message_id) == status
