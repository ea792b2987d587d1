"""The screen-pop: call events through the real pipeline → the card on the operator's page."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest
from e2e.helpers import login, new_context, pbx, shoot, shoot_widths
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from support.call_events import answered_end
from support.server import RunningApi

from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication
from telephony import events as ev

OPERATOR_EXT = "104"
_ids = itertools.count(1)


def now() -> datetime:
    return datetime.now(UTC)


async def a_client(
    db: async_sessionmaker[AsyncSession], *, with_manager: bool
) -> tuple[int, str, str, str | None]:
    """A demo client: id, name, E.164 number, manager's name."""
    async with db() as session:
        rows = (
            await session.scalars(
                select(Client)
                .options(selectinload(Client.phones), selectinload(Client.manager))
                .order_by(Client.id)
            )
        ).all()
    for c in rows:
        if c.phones and (c.manager_id is not None) == with_manager and c.kind == "person":
            return c.id, c.name, c.phones[0].e164, c.manager.full_name if c.manager else None
    raise AssertionError("the demo data has no such client")


def ringing(call_id: str, caller: str) -> tuple[ev.CallEvent, ...]:
    return (
        ev.CallStarted(
            call_id=call_id,
            at=now(),
            direction=ev.Direction.INBOUND,
            caller=caller,
            callee="4950000000",
        ),
        ev.CallRinging(call_id=call_id, at=now(), agent=OPERATOR_EXT),
    )


def other_form(e164: str) -> str:
    """+79161234567 → 8 (916) 123-45-67: what a PBX trunk may present."""
    d = e164.removeprefix("+7")
    return f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}"


async def operator_page(browser: Browser, app: RunningApi, lang: str = "ru") -> Page:
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "operator", "operator-demo-1", lang)
    await expect(page.get_by_test_id("my-status")).to_have_text(
        "В сети" if lang == "ru" else "Online"
    )
    return page


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_card_pops_on_ringing_and_follows_the_call(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    client_id, name, e164, manager = await a_client(db, with_manager=True)
    page = await operator_page(browser, app)
    call_id = f"pop-{next(_ids)}"

    await pbx(app, *ringing(call_id, other_form(e164)))
    panel = page.locator(f"[data-testid=call-panel][data-call-id='{call_id}']")
    await expect(panel).to_have_attribute("data-state", "ringing")
    await expect(panel.get_by_test_id("call-client-name")).to_have_text(name)
    await expect(panel.get_by_test_id("call-manager")).to_have_text(manager or "")
    await expect(panel.get_by_test_id("call-comms")).to_be_visible()  # the demo's note and call
    await expect(panel.get_by_text("Входящий звонок")).to_be_visible()
    # The marks the screen-pop benchmark reads: frame arrival → card painted.
    pop = await page.evaluate(
        "id => performance.getEntriesByName('screen-pop:' + id).map(e => e.duration)", call_id
    )
    assert len(pop) == 1 and pop[0] >= 0
    await shoot(page, "console-ringing-ru")

    await pbx(app, ev.CallAnswered(call_id=call_id, at=now(), agent=OPERATOR_EXT))
    await expect(panel).to_have_attribute("data-state", "answered")
    await expect(panel.get_by_text("Идёт разговор")).to_be_visible()
    await expect(page.get_by_test_id("my-status")).to_have_text("На звонке")
    # The live timer moves.
    first = await panel.get_by_test_id("call-timer").text_content()
    await expect(panel.get_by_test_id("call-timer")).not_to_have_text(first or "", timeout=3000)

    # Refreshed during the call: the page asks /calls/active and shows it again.
    await page.reload()
    await expect(panel).to_have_attribute("data-state", "answered")
    await expect(panel.get_by_test_id("call-client-name")).to_have_text(name)

    await pbx(app, answered_end(call_id, now(), OPERATOR_EXT, ring_s=3.0, talk_s=12.0))
    await expect(panel).to_have_attribute("data-state", "ended")
    await expect(panel.get_by_test_id("call-timer")).to_have_text("00:12")  # the PBX's talk time
    note = "Договорились о встрече во вторник"
    await panel.get_by_test_id("after-call-note").locator("textarea").fill(note)
    await panel.get_by_role("button", name="Сохранить заметку").click()
    await expect(panel.get_by_test_id("after-call-note").locator("textarea")).to_have_value("")
    await shoot(page, "console-ended-ru")
    async with db() as session:
        bodies = (
            await session.scalars(
                select(Communication.body).where(
                    Communication.client_id == client_id, Communication.kind == "note"
                )
            )
        ).all()
    assert note in bodies


def missed_call(call_id: str) -> ev.CallEnded:
    """Nobody answered: the phone rang 20 s (cause 19, no answer)."""
    return ev.CallEnded(
        call_id=call_id,
        at=now(),
        direction=ev.Direction.INBOUND,
        disposition=ev.Disposition.MISSED,
        cause=19,
        ring_s=20.0,
    )


async def test_unknown_caller_gets_a_prefilled_new_card(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    page = await operator_page(browser, app, "en")
    call_id = f"new-{next(_ids)}"
    await pbx(app, *ringing(call_id, "8 999 765-43-21"))
    form = page.get_by_test_id("new-card-form")
    await expect(form).to_be_visible()
    # The number as the PBX normalised it, shown as the call's header shows it.
    await expect(form.get_by_label("Phone")).to_have_value("+7\u00a0999\u00a0765\u201143\u201121")
    save = form.get_by_role("button", name="Save")
    await expect(save).to_be_disabled()  # no name yet: nothing can be written
    await form.get_by_label("Name").fill("Новиков Пётр")
    await shoot(page, "console-new-card-en")
    await save.click()
    panel = page.locator(f"[data-testid=call-panel][data-call-id='{call_id}']")
    await expect(panel.get_by_test_id("call-client-name")).to_have_text("Новиков Пётр")
    async with db() as session:
        names = (
            await session.scalars(select(Client.name).where(Client.name == "Новиков Пётр"))
        ).all()
    assert names == ["Новиков Пётр"]  # the PBX's card was filled in, not a second one made


async def test_one_pop_per_call_across_tabs_and_missed_call_back(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    _, name, e164, _ = await a_client(db, with_manager=False)
    page = await operator_page(browser, app)
    second = await page.context.new_page()
    await second.goto("/console")
    await expect(second.get_by_test_id("no-call")).to_be_visible()

    call_id = f"tabs-{next(_ids)}"
    await pbx(app, *ringing(call_id, e164))
    pops = page.get_by_test_id("call-panel")
    pops2 = second.get_by_test_id("call-panel")
    elsewhere = page.get_by_test_id("call-elsewhere")
    elsewhere2 = second.get_by_test_id("call-elsewhere")
    # Exactly one of the two tabs pops the card; the other just says where it is.
    await expect(pops.or_(elsewhere)).to_be_visible()
    await expect(pops2.or_(elsewhere2)).to_be_visible()
    assert await pops.count() + await pops2.count() == 1
    assert await elsewhere.count() + await elsewhere2.count() == 1

    # Nobody answers: a missed call with a call-back button (the client has no manager,
    # so it is the operator's).
    await pbx(
        app,
        missed_call(call_id),
    )
    missed = page.get_by_test_id("missed-calls")
    await expect(missed.get_by_role("button", name=re.compile("^Перезвонить"))).to_have_count(1)
    await expect(missed.get_by_role("link", name=name)).to_be_visible()
    await shoot(page, "console-missed-ru")
    # The missed call became the operator's callback task: still listed after a reload.
    await page.reload()
    await expect(missed.get_by_role("link", name=name)).to_be_visible()
    await expect(missed.get_by_role("button", name=re.compile("^Перезвонить"))).to_have_count(1)


async def test_a_call_taken_elsewhere_leaves_the_console(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    """The caller hangs up while the operator's phone rings: the pop leaves (nothing to
    note on a call never answered here; the follow-up belongs to the client's manager)."""
    _, name, e164, _ = await a_client(db, with_manager=True)
    page = await operator_page(browser, app, "en")
    await page.get_by_role("navigation").get_by_role("link", name="Clients").click()
    call_id = f"gone-{next(_ids)}"
    await pbx(app, *ringing(call_id, e164))
    # Away from the console the card pops as a floating panel.
    panel = page.locator(f"aside.floating [data-testid=call-panel][data-call-id='{call_id}']")
    await expect(panel.get_by_test_id("call-client-name")).to_have_text(name)
    await shoot(page, "clients-floating-pop-en")
    await pbx(
        app,
        ev.CallEnded(
            call_id=call_id,
            at=now(),
            direction=ev.Direction.INBOUND,
            disposition=ev.Disposition.ABANDONED,
            cause=16,
            ring_s=4.0,
        ),
    )
    await expect(panel).to_have_count(0, timeout=15_000)
    await expect(page.get_by_test_id("my-status")).to_have_text("Online")


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_missed_calls_are_one_row_per_client_with_a_count(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    """Two missed calls of one client: one row, "×2", one call-back button; the list
    comes from the API (the callback tasks), so a reload keeps it."""
    _, name, e164, _ = await a_client(db, with_manager=False)
    page = await operator_page(browser, app, lang)
    for _ in range(2):
        call_id = f"missed-{lang}-{next(_ids)}"
        await pbx(app, *ringing(call_id, e164))
        await pbx(
            app,
            missed_call(call_id),
        )
    missed = page.get_by_test_id("missed-calls")
    back = "Перезвонить" if lang == "ru" else "Call back"
    await expect(missed.get_by_test_id("missed-count")).to_have_text("×2")
    await expect(missed.get_by_role("button", name=re.compile(f"^{back}"))).to_have_count(1)
    await expect(missed.get_by_role("link", name=name)).to_be_visible()
    await page.reload()
    await expect(missed.get_by_test_id("missed-count")).to_have_text("×2")
    await shoot_widths(page, f"console-missed-count-{lang}")
