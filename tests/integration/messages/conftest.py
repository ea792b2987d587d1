from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.server import RunningApi, running_api
from support.sms import SmtpServer, sms_stack
from support.smsc import SmscProcess

from crm_api.messages.email import start_email
from crm_api.platform.settings import Settings


@pytest.fixture
async def sms_api(settings: Settings, smsc: SmscProcess) -> AsyncIterator[RunningApi]:
    async with sms_stack(settings, smsc) as running:
        yield running


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
        running.app.state.services.links.email_outbox.poll = 0.2
        yield running
