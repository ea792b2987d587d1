from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from support.peers import free_port
from support.server import RunningApi, running_api
from support.sms import sms_stack
from support.smsc import SmscProcess

from crm_api.messaging.email import start_email
from crm_api.settings import Settings


@pytest.fixture
async def smsc(tmp_path: Path) -> AsyncIterator[SmscProcess]:
    proc = SmscProcess(tmp_path / "smsc.jsonl")
    await proc.start()
    yield proc
    await proc.kill()


@pytest.fixture
async def sms_api(settings: Settings, smsc: SmscProcess) -> AsyncIterator[RunningApi]:
    async with sms_stack(settings, smsc) as running:
        yield running


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
        self.messages.append(message_from_bytes(envelope.content))
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


@pytest.fixture
def smtp() -> Any:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
async def mail_api(settings: Settings, smtp: SmtpServer) -> AsyncIterator[RunningApi]:
    s = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_from": "crm@example.ru"}
    )
    async with running_api(s, features=(start_email,)) as running:
        running.app.state.services.extras["email"].poll = 0.2
        yield running
