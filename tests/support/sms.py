"""Helpers of the SMS and e-mail tests: Callcard bound to a test SMSC, client cards in
bulk, waiting for a condition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import Message
from email.policy import default
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from crm_api.messages.sms.pipeline import start_sms
from crm_api.platform.settings import Settings
from support.peers import free_port
from support.server import RunningApi, running_api
from support.smsc import SmscProcess


def sms_settings(settings: Settings, smsc: SmscProcess, **more: Any) -> Settings:
    return settings.model_copy(
        update={"smpp_url": smsc.url, "smpp_window": 50, "smpp_enquire_link_s": 2.0, **more}
    )


@contextlib.asynccontextmanager
async def sms_stack(
    settings: Settings, smsc: SmscProcess, **more: Any
) -> AsyncIterator[RunningApi]:
    """Callcard with the SMS feature bound to this SMSC."""
    async with running_api(sms_settings(settings, smsc, **more), features=(start_sms,)) as api:
        service = api.app.state.services.links.sms_outbox
        assert await service.gateway.wait_bound(10), service.gateway.last_error
        yield api


async def make_client(
    http: httpx.AsyncClient, name: str, phone: str, *, manager_id: int | None = None, **more: Any
) -> dict[str, Any]:
    r = await http.post(
        "/clients",
        json={"name": name, "phones": [{"number": phone}], "manager_id": manager_id, **more},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def make_clients(http: httpx.AsyncClient, n: int, *, prefix: str) -> list[dict[str, Any]]:
    """n cards with distinct mobile numbers +7 926 5xx-xx-xx, 20 requests at a time."""
    cards: list[dict[str, Any]] = []
    for start in range(0, n, 20):
        batch = range(start, min(n, start + 20))
        cards += await asyncio.gather(
            *(make_client(http, f"{prefix} {i:04d}", f"+7926{5000000 + i:07d}") for i in batch)
        )
    return cards


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[Any] = []
        self.refuse: set[str] = set()
        self.arrived = asyncio.Event()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.box = Mailbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
