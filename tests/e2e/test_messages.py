"""SMS and e-mail from the card: sent twice in a row without an error, and a channel the
server has no gateway for is shown as such instead of a green "sent"."""

from __future__ import annotations

import re

import pytest
from e2e.helpers import login, new_context, same_site, shoot_widths
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from support.server import RunningApi

from crm_api.clients import phones
from crm_api.clients.models import Client
from crm_api.messages.models import OutboxMessage

WORDS = {
    "ru": {
        "sms": "SMS",
        "email": "E-mail",
        "send": "Отправить",
        "queued": "Поставлено в очередь",
        "subject": "Тема",
        "no_sms": "SMS на этом сервере не настроены",
        "no_email": "Почта на этом сервере не настроена",
    },
    "en": {
        "sms": "SMS",
        "email": "E-mail",
        "send": "Send",
        "queued": "Queued for sending",
        "subject": "Subject",
        "no_sms": "SMS is not set up on this server",
        "no_email": "E-mail is not set up on this server",
    },
}


async def mobile_client(db: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
    """A demo client of the manager's with a mobile phone (an SMS can reach it)."""
    async with db() as session:
        rows = await session.scalars(
            select(Client).options(selectinload(Client.phones)).order_by(Client.id)
        )
        for client in rows:
            mobile = any(phones.is_mobile(p.e164) for p in client.phones)
            if client.manager_id and mobile and not client.sms_opted_out:
                return client.id, client.name
    raise AssertionError("the demo data has no client with a mobile phone")


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_two_sms_and_an_email_in_a_row(
    wired_app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    w = WORDS[lang]
    client_id, _ = await mobile_client(db)
    context = await new_context(browser, wired_app, lang)
    page = await context.new_page()
    # The client's manager sends (a manager sees only their own clients).
    async with db() as session:
        client = await session.get(Client, client_id, options=[selectinload(Client.manager)])
        assert client is not None and client.manager is not None
        username = client.manager.username
    await login(page, username, f"manager-demo-{username.removeprefix('manager') or '1'}", lang)
    await page.goto(f"/clients/{client_id}")
    sms_button = page.get_by_test_id("phones").get_by_role("button", name=re.compile(w["sms"]))
    timeline = page.get_by_test_id("timeline")
    texts = [f"Первое сообщение {lang}", f"Второе сообщение {lang}"]
    for text in texts:  # the second send used to fail with a 500 (an empty key, repeated)
        await sms_button.first.click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_test_id("message-text").locator("textarea").fill(text)
        await dialog.get_by_role("button", name=w["send"]).dblclick()  # still one message
        await expect(dialog).to_be_hidden()
        await expect(page.locator(".n-message--success-type").last).to_contain_text(w["queued"])
        await expect(timeline.locator("[data-kind=sms]", has_text=text)).to_have_count(1)
    await expect(page.locator(".n-message--error-type")).to_have_count(0)

    # An e-mail the same way (the card gets an address first).
    added = await page.request.patch(
        f"/api/v1/clients/{client_id}",
        data={"emails": [{"email": f"client-{lang}@example.ru"}]},
        headers=same_site(page),
    )
    assert added.ok, await added.text()
    await page.reload()
    await page.get_by_role("button", name=f"{w['email']} client-{lang}@example.ru").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label(w["subject"]).fill("Счёт")
    await dialog.get_by_test_id("message-text").locator("textarea").fill("Счёт во вложении")
    await dialog.get_by_role("button", name=w["send"]).click()
    await expect(dialog).to_be_hidden()
    await expect(timeline.locator("[data-kind=email]", has_text="Счёт")).to_have_count(1)
    await shoot_widths(page, f"card-messages-{lang}")
    await expect(page.locator(".n-message--error-type")).to_have_count(0)

    async with db() as session:
        sent = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.client_id == client_id))
        ).all()
    assert sorted(m.body for m in sent if m.channel == "sms") == sorted(texts)
    keys = [m.idempotency_key for m in sent]
    assert all(keys) and len(set(keys)) == len(keys) == 3
    await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_channels_without_a_gateway_say_so(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    w = WORDS[lang]
    client_id, _ = await mobile_client(db)
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1", lang)  # sees every card
    await page.request.patch(
        f"/api/v1/clients/{client_id}",
        data={"emails": [{"email": "client@example.ru"}]},
        headers=same_site(page),
    )
    await page.goto(f"/clients/{client_id}")
    sms = page.get_by_test_id("phones").get_by_role("button", name=re.compile(f"^{w['sms']}"))
    await expect(sms.first).to_be_disabled()
    await expect(sms.first).to_have_attribute("title", w["no_sms"])
    await expect(page.get_by_test_id("channel-off").filter(has_text=w["no_sms"])).to_be_visible()
    email = page.get_by_role("button", name=f"{w['email']} client@example.ru")
    await expect(email).to_be_disabled()
    await expect(page.get_by_test_id("channel-off").filter(has_text=w["no_email"])).to_be_visible()
    await shoot_widths(page, f"card-no-gateways-{lang}")

    refused = await page.request.post(
        f"/api/v1/clients/{client_id}/sms",
        data={"text": "x"},
        headers=same_site(page),
    )
    assert refused.status == 503
    assert (await refused.json())["error"]["code"] == "sms_not_configured"
    await context.close()
