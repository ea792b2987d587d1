"""Message templates are plain named placeholders: no attribute access into Python
objects, no padding to any length; and an SMS still fits its limit once filled in."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi
from support.sms import make_client

from crm_api.accounts.models import Role
from crm_api.clients.models import Client
from crm_api.messages.models import OutboxMessage
from crm_api.messages.templates import SMS_MAX_CHARS, render


def test_placeholders_reach_no_attribute_and_pad_nothing() -> None:
    client = Client(name="Иванов Иван Петрович")
    assert render("Здравствуйте, {first_name}!", client) == "Здравствуйте, Иван!"
    for hostile in (
        "{name.__class__.__init__.__globals__}",
        "{name.__class__}",
        "{first_name:>200000}",
        "{name!r}",
        "{0}",
        "{",
        "{unknown}",
    ):
        assert render(hostile, client) == hostile


async def test_an_sms_padded_past_its_limit_is_refused_and_nothing_queued(
    sms_api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    async with sms_api.client(actors[Role.OPERATOR].token) as http:
        card = await make_client(http, "Длинноимённый " + "Я" * 280, "+7 916 222-33-45")
        url = f"/clients/{card['id']}/sms"
        r = await http.post(url, json={"text": "{first_name:>200000}"})
        assert r.status_code == 202, r.text
        assert r.json()["body"] == "{first_name:>200000}"  # sent as written, not padded
        r = await http.post(url, json={"text": "{name.__class__}"})
        assert r.status_code == 202 and r.json()["body"] == "{name.__class__}"
        # Filled in, six copies of a 295-character name pass the limit.
        r = await http.post(url, json={"text": "{name} " * 6})
        assert r.status_code == 422, r.text
        assert str(SMS_MAX_CHARS) in r.json()["error"]["message"]
    async with db() as session:
        longest = await session.scalar(select(func.max(func.length(OutboxMessage.body))))
    assert longest is not None and longest <= SMS_MAX_CHARS
