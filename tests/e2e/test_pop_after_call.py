"""The pop for an unknown number: a ring and a notification (when the operator turned them
on), the number added to an existing client found by name, and the call's result."""

from __future__ import annotations

import pytest
from e2e.helpers import login, new_context, pbx, shoot_widths
from e2e.test_screen_pop import OPERATOR_EXT, a_client, now, ringing
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.call_events import answered_end
from support.server import RunningApi

from crm_api.calls.models import Call
from crm_api.clients.models import ClientPhone
from telephony import events as ev

WORDS = {
    "ru": {"attach": "Добавить", "result": "Перезвонить позже", "incoming": "Входящий звонок"},
    "en": {"attach": "Add", "result": "Call back later", "incoming": "Incoming call"},
}
# The browser's own Notification, counted as the page makes them.
COUNT_NOTIFICATIONS = """
window.__notifications = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) {
    super(title, options);
    window.__notifications.push([title, options?.body]);
  }
};
"""


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_unknown_number_rings_then_goes_to_an_existing_client_with_a_result(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    w = WORDS[lang]
    client_id, name, _, _ = await a_client(db, with_manager=True)
    context = await new_context(browser, app, lang)
    await context.grant_permissions(["notifications"])
    await context.add_init_script(COUNT_NOTIFICATIONS)
    page = await context.new_page()
    await login(page, "operator", "operator-demo-1", lang)
    switch = page.get_by_test_id("pop-alerts")
    await expect(switch).to_have_attribute("aria-checked", "false")  # off until turned on
    await switch.click()
    await expect(switch).to_have_attribute("aria-checked", "true")

    call_id = f"attach-{lang}"
    number = "+7999555" + ("0101" if lang == "ru" else "0202")
    await pbx(app, *ringing(call_id, number))
    panel = page.locator(f"[data-testid=call-panel][data-call-id='{call_id}']")
    await expect(panel.get_by_test_id("new-card-form")).to_be_visible()
    await expect(page.get_by_test_id("mute")).to_be_visible()  # it rings
    notes = await page.evaluate("window.__notifications")
    shown = f"+7\u00a0999\u00a0555\u2011{number[-4:-2]}\u2011{number[-2:]}"  # as the UI prints it
    assert notes == [[w["incoming"], shown]]

    attach = panel.get_by_test_id("attach")
    await attach.locator(".n-base-selection").click()
    await page.keyboard.type(name.split()[0])
    await page.locator(".n-base-select-option", has_text=name).first.click()
    await shoot_widths(page, f"pop-attach-{lang}")
    await attach.get_by_role("button", name=w["attach"]).click()
    await expect(panel.get_by_test_id("call-client-name")).to_have_text(name)
    async with db() as session:
        owner = await session.scalar(
            select(ClientPhone.client_id).where(ClientPhone.e164 == number)
        )
    assert owner == client_id

    await pbx(app, ev.CallAnswered(call_id=call_id, at=now(), agent=OPERATOR_EXT))
    await expect(page.get_by_test_id("mute")).to_be_hidden()  # answered: the ring stops
    await pbx(app, answered_end(call_id, now(), OPERATOR_EXT, ring_s=4.0, talk_s=30.0))
    await expect(panel).to_have_attribute("data-state", "ended")
    await panel.get_by_test_id("call-result").click()
    await page.locator(".n-base-select-option", has_text=w["result"]).click()
    await expect(panel.get_by_test_id("call-result")).to_contain_text(w["result"])
    await shoot_widths(page, f"pop-result-{lang}")

    async def result() -> str | None:
        async with db() as session:
            return await session.scalar(select(Call.result).where(Call.pbx_call_id == call_id))

    assert await result() == "callback"
    await context.close()
