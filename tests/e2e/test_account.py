"""My account and the admin's edits, in both languages: a new password ends the user's
other sessions and says so; an API token is shown once, works, and is revoked; an admin
edits a user's name, extension and password, a role change is confirmed first, and the
last active admin cannot demote or deactivate themself."""

from __future__ import annotations

import httpx
import pytest
from e2e.helpers import choose, login, new_context, shoot, shoot_widths
from playwright.async_api import Browser, expect
from support.server import RunningApi

T = {
    "ru": {
        "account": "Мой профиль",
        "name": "Название токена",
        "create": "Создать токен",
        "done": "Готово",
        "revoke": "Отозвать",
        "current": "Текущий пароль",
        "new": "Новый пароль",
        "repeat": "Новый пароль ещё раз",
        "change": "Сменить пароль",
        "wrong": "Текущий пароль неверен.",
        "changed": "Пароль изменён. Другие ваши сеансы и API-токены завершены.",
        "edit": "Изменить",
        "fullName": "ФИО",
        "extension": "Внутренний номер",
        "save": "Сохранить",
        "role": "Роль",
        "supervisor": "Супервизор",
        "manager": "Менеджер",
        "admin": "Администратор",
        "yes": "Да",
        "cancel": "Отмена",
        "active": "Активен",
        "lastAdmin": "Это последний активный администратор",
    },
    "en": {
        "account": "My account",
        "name": "Token name",
        "create": "Create token",
        "done": "Done",
        "revoke": "Revoke",
        "current": "Current password",
        "new": "New password",
        "repeat": "New password again",
        "change": "Change password",
        "wrong": "The current password is wrong.",
        "changed": "Password changed. Your other sessions and API tokens have ended.",
        "edit": "Edit",
        "fullName": "Full name",
        "extension": "Extension",
        "save": "Save",
        "role": "Role",
        "supervisor": "Supervisor",
        "manager": "Manager",
        "admin": "Administrator",
        "yes": "Yes",
        "cancel": "Cancel",
        "active": "Active",
        "lastAdmin": "This is the last active administrator",
    },
}


async def _status(app: RunningApi, token: str) -> int:
    async with httpx.AsyncClient(base_url=f"{app.base_url}/api/v1") as http:
        r = await http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        return r.status_code


async def _login_api(app: RunningApi, username: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"{app.base_url}/api/v1") as http:
        return await http.post("/auth/login", json={"username": username, "password": password})


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_my_account_password_and_api_tokens(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    t = T[lang]
    elsewhere = (await _login_api(app, "manager", "manager-demo-1")).json()["token"]
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)
    await page.get_by_test_id("my-account").click()
    await expect(page).to_have_url(f"{app.base_url}/account")
    await expect(page.get_by_role("heading", level=1)).to_have_text(t["account"])
    table = page.get_by_test_id("tokens-table")
    await expect(table.locator("tbody tr").first).to_be_visible()
    assert await table.locator("tbody tr").count() >= 2  # this browser and `elsewhere`
    await shoot_widths(page, f"page-account-{lang}")

    # A token for a script: shown once, it works, and it can be revoked.
    await page.get_by_label(t["name"], exact=True).fill("CI script")
    await page.get_by_role("button", name=t["create"]).click()
    secret = await page.get_by_test_id("new-token").inner_text()
    assert len(secret) > 30
    await shoot(page, f"account-token-{lang}")
    assert await _status(app, secret) == 200
    await page.get_by_role("button", name=t["done"]).click()
    await expect(page.get_by_test_id("new-token")).to_have_count(0)
    row = table.locator("tbody tr", has_text="CI script")
    await expect(row).to_have_count(1)
    await row.get_by_role("button", name=f"{t['revoke']}: CI script").click()
    await expect(row).to_have_count(0)
    assert await _status(app, secret) == 401

    # A wrong current password says so; the right one ends the other session.
    card = page.get_by_test_id("password-card")
    await card.get_by_label(t["current"], exact=True).fill("not-my-password")
    await card.get_by_label(t["new"], exact=True).fill("brand-new-pass-1")
    await card.get_by_label(t["repeat"], exact=True).fill("brand-new-pass-1")
    await card.get_by_role("button", name=t["change"]).click()
    await expect(card.get_by_role("alert")).to_have_text(t["wrong"])
    await card.get_by_label(t["current"], exact=True).fill("manager-demo-1")
    await card.get_by_role("button", name=t["change"]).click()
    await expect(page.get_by_test_id("password-changed")).to_have_text(t["changed"])
    await expect(table.locator("tbody tr")).to_have_count(1)  # only this browser is left
    await shoot(page, f"account-password-changed-{lang}")
    assert await _status(app, elsewhere) == 401
    await page.reload()
    await expect(page.get_by_role("heading", level=1)).to_have_text(t["account"])
    assert (await _login_api(app, "manager", "brand-new-pass-1")).status_code == 200
    await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_admin_edits_a_user_and_cannot_remove_the_last_admin(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    t = T[lang]
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "admin", "admin-demo-1", lang)
    await page.goto("/admin")
    users = page.get_by_test_id("users-table")
    await expect(users.locator("tbody tr")).to_have_count(6)

    # Name, extension and a new password.
    await users.get_by_role("button", name=f"{t['edit']}: manager2").click()
    form = page.get_by_test_id("edit-user")
    await form.get_by_label(t["fullName"], exact=True).fill("Анна Новикова")
    await form.get_by_label(t["extension"], exact=True).fill("205")
    await form.get_by_label(t["new"], exact=True).fill("reset-by-admin-1")
    await shoot(page, f"admin-edit-user-{lang}")
    await form.get_by_role("button", name=t["save"]).click()
    row = users.locator("tbody tr", has_text="manager2")
    await expect(row).to_contain_text("Анна Новикова")
    await expect(row).to_contain_text("205")
    assert (await _login_api(app, "manager2", "reset-by-admin-1")).status_code == 200

    # A role change asks first: cancelled, nothing changes; confirmed, it is saved.
    await choose(page, f"{t['role']}: manager2", t["supervisor"])
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Анна Новикова")
    await shoot(page, f"admin-confirm-role-{lang}")
    await dialog.get_by_role("button", name=t["cancel"]).click()
    await expect(row).to_contain_text(t["manager"])
    await choose(page, f"{t['role']}: manager2", t["supervisor"])
    await page.get_by_role("dialog").get_by_role("button", name=t["yes"]).click()
    await expect(row).to_contain_text(t["supervisor"])
    listed = await (await page.request.get("/api/v1/users")).json()
    assert {u["username"]: u["role"] for u in listed["items"]}["manager2"] == "supervisor"

    # The only admin can neither demote nor deactivate themself: a clear message.
    await choose(page, f"{t['role']}: admin", t["manager"])
    await page.get_by_role("dialog").get_by_role("button", name=t["yes"]).click()
    refused = page.get_by_test_id("user-refused")
    await expect(refused).to_contain_text(t["lastAdmin"])
    await expect(users.locator("tbody tr", has_text="admin").first).to_contain_text(t["admin"])
    await shoot(page, f"admin-last-admin-{lang}")
    await refused.get_by_role("button").click()  # closed; the next refusal shows anew
    await page.get_by_label(f"{t['active']}: admin", exact=True).click()
    await page.get_by_role("dialog").get_by_role("button", name=t["yes"]).click()
    await expect(refused).to_contain_text(t["lastAdmin"])
    me = await (await page.request.get("/api/v1/auth/me")).json()
    assert (me["role"], me["is_active"]) == ("admin", True)
    await shoot_widths(page, f"page-admin-edits-{lang}")
    await context.close()
