"""Clients: search by a phone written another way, the card, editing, notes, views."""

from __future__ import annotations

import pytest
from e2e.helpers import choose, login, new_context, set_language, shoot
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from support.server import RunningApi

from crm_api.clients.models import Client


async def test_search_by_phone_in_another_form_and_edit_the_card(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session:
        client = (
            await session.scalars(
                select(Client).options(selectinload(Client.phones)).order_by(Client.id).offset(3)
            )
        ).first()
        assert client is not None and client.phones
        name, e164 = client.name, client.phones[0].e164
    context = await new_context(browser, app, "ru")
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1")
    await page.goto("/clients")
    table = page.get_by_test_id("clients-table")
    await expect(table.locator("tbody tr")).to_have_count(25)
    await shoot(page, "clients-ru")

    # +79161234567 typed as "8 (916) 123 45 67": the same subscriber.
    d = e164.removeprefix("+7")
    await page.get_by_role("searchbox").fill(f"8 ({d[:3]}) {d[3:6]} {d[6:8]} {d[8:]}")
    await expect(table.locator("tbody tr")).to_have_count(1)
    await expect(table.get_by_role("link", name=name)).to_be_visible()
    await expect(page.get_by_test_id("clients-total")).to_have_text("Клиентов: 1")

    await table.get_by_role("link", name=name).click()
    await expect(page.get_by_test_id("client-name")).to_have_text(name)
    await expect(page.get_by_test_id("phones")).to_contain_text(d[:3])
    await shoot(page, "client-card-ru")

    # A bad e-mail is refused with a clear message and nothing is written.
    await page.get_by_role("button", name="Изменить").click()
    form = page.get_by_test_id("client-edit")
    await form.get_by_role("button", name="Добавить e-mail").click()
    emails = form.get_by_label("E-mail", exact=False)
    await emails.last.fill("not-an-email")
    await form.get_by_label("Должность").fill("Главный инженер")
    await form.get_by_role("button", name="Сохранить").click()
    await expect(page.locator(".n-message")).to_be_visible()
    await expect(form).to_be_visible()
    async with db() as session:
        assert (await session.get(Client, client.id)).position is None  # type: ignore[union-attr]

    await emails.last.fill("")
    await form.get_by_role("button", name="Сохранить").click()
    await expect(form).to_be_hidden()
    await expect(page.get_by_text("Главный инженер")).to_be_visible()

    # A note lands on the timeline.
    before = await page.get_by_test_id("timeline-item").count()
    await page.get_by_test_id("note-input").locator("textarea").fill("Просил счёт на почту")
    await page.get_by_role("button", name="Добавить", exact=True).click()
    await expect(page.get_by_test_id("timeline-item")).to_have_count(before + 1)
    await expect(
        page.get_by_test_id("timeline").get_by_text("Просил счёт на почту")
    ).to_be_visible()
    await context.close()


async def test_saved_view_filters_the_list(app: RunningApi, browser: Browser) -> None:
    context = await new_context(browser, app, "en")
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1", "en")
    await page.goto("/clients")
    total = page.get_by_test_id("clients-total")
    await expect(total).to_have_text("50 clients")
    await choose(page, "Kind", "Company")
    await expect(total).not_to_have_text("50 clients")
    companies = await total.text_content()

    await page.get_by_role("button", name="Save view").click()
    await page.get_by_label("View name").fill("Companies")
    await page.get_by_role("button", name="Save", exact=True).click()
    await page.get_by_role("button", name="Reset").click()
    await expect(total).to_have_text("50 clients")
    await choose(page, "Saved views", "Companies")
    await expect(total).to_have_text(companies or "")
    await shoot(page, "clients-view-en")
    await context.close()


async def test_login_and_search_by_keyboard(app: RunningApi, browser: Browser) -> None:
    context = await new_context(browser, app, "en")
    page = await context.new_page()
    await page.goto("/login")
    await set_language(page, "operator", "operator-demo-1", "en")
    await expect(page.locator("#username")).to_be_focused()
    await page.keyboard.type("operator")
    await page.keyboard.press("Tab")
    await page.keyboard.type("operator-demo-1")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{app.base_url}/console")
    # Through the navigation by keyboard to the clients, then the search box.
    clients = page.get_by_role("navigation").get_by_role("link", name="Clients")
    await clients.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Clients")
    await page.get_by_role("searchbox").focus()
    await page.keyboard.type("ООО")
    await expect(page.get_by_test_id("clients-total")).not_to_have_text("50 clients")
    await context.close()


async def test_import_new_client_and_export(app: RunningApi, browser: Browser) -> None:
    context = await new_context(browser, app, "en")
    page = await context.new_page()
    await login(page, "manager2", "manager-demo-2", "en")
    await page.goto("/clients")
    total = page.get_by_test_id("clients-total")
    await expect(total).not_to_have_text("0 clients")
    before = await total.text_content()
    upload = page.get_by_test_id("import-file")

    # One bad row: every row is refused, the errors are listed.
    bad = "name,phones\nСмирнов Олег,8 916 000-11-22\nБез телефона,not a phone\n"
    await upload.set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}]
    )
    await expect(page.get_by_role("alert")).to_contain_text("#3 phones")
    await expect(total).to_have_text(before or "")

    good = "name,phones\nСмирнов Олег,8 916 000-11-22\nОрлова Нина,+7 (926) 555-44-33\n"
    await upload.set_input_files(
        files=[{"name": "good.csv", "mimeType": "text/csv", "buffer": good.encode()}]
    )
    await expect(page.locator(".n-message--success-type")).to_contain_text("Imported 2 of 2")
    await page.get_by_role("searchbox").fill("926 555 44 33")
    found = page.get_by_test_id("clients-table").get_by_role("link")
    await expect(found).to_have_count(1)
    await expect(found).to_have_text("Орлова Нина")

    # A new client by hand: a number that is already a client's is refused.
    await page.get_by_role("button", name="New client").click()
    form = page.get_by_test_id("new-client")
    await form.get_by_label("Name").fill("Дубль")
    await form.get_by_label("Phone").fill("+7 926 555-44-33")
    await form.get_by_role("button", name="Save").click()
    # The API's message says whose number it is.
    await expect(page.locator(".n-message--error-type", has_text="already")).to_be_visible()
    await form.get_by_label("Phone").fill("8 903 123-00-00")
    await form.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("client-name")).to_have_text("Дубль")

    # Export: the CSV of the list, with the imported clients.
    await page.goto("/clients")
    async with page.expect_download() as got:
        await page.get_by_role("link", name="Export").click()
    path = await (await got.value).path()
    assert "Орлова Нина" in path.read_text(encoding="utf-8-sig")
    await context.close()


@pytest.mark.parametrize(
    ("lang", "export", "heading"),
    [("ru", "Экспорт", "Имя;Тип;Телефоны;"), ("en", "Export", "name,kind,phones,")],
)
async def test_export_opens_in_the_users_excel(
    app: RunningApi, browser: Browser, lang: str, export: str, heading: str
) -> None:
    """Excel in a Russian locale splits on `;`: a Russian user's CSV uses it, headed in
    Russian; an English user's keeps `,` and the column keys. Both keep the BOM."""
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)
    await page.goto("/clients")
    async with page.expect_download() as got:
        await page.get_by_role("link", name=export).click()
    body = (await (await got.value).path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    assert body.decode("utf-8-sig").splitlines()[0].startswith(heading)
    await context.close()
