"""Own account in a real Chromium against the real server: the forced "Choose a new password"
after an admin's reset, the Account page (change password; where you're signed in, ending
another browser's session, signing out everywhere else) and the sign-in page's word when an
admin disables the account."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import MOBILE, UI, ServerFactory, screenshot, submit_login
from tests.support import PASSWORD, RunningServer

pytestmark = pytest.mark.browser

TEMPORARY = "temporary tulip 42"
CHOSEN = "quiet harbour morning"
CHANGED = "seven green kettles"


async def admin_call(
    server: RunningServer, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    token = await server.token("root")
    response = await server.http.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def me(server: RunningServer, name: str, password: str) -> dict[str, Any]:
    token = (await server.login(name, password))["access_token"]
    response = await server.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def open_account(page: Page) -> None:
    await page.get_by_test_id("nav-account").click()
    await expect(page.get_by_test_id("account-view")).to_be_visible()
    await expect(page.get_by_test_id("nav-account")).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("account-sessions")).to_have_attribute("data-state", "ready")


async def signed_out(page: Page, notice: str) -> None:
    await expect(page.get_by_test_id("login-page")).to_be_visible()
    await expect(page.get_by_test_id("login-notice")).to_have_text(notice)


@pytest.mark.timeout(120)
async def test_forced_password_change_after_an_admin_reset(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server, UI(browser, server) as ui:
        ui.problems.allow("/api/account/password", 401)
        ui.problems.allow("/api/account/password", 400)
        ui.problems.allow("/api/recordings", 403)
        await server.add_user("root", admin=True)
        dave_id = await server.add_user("dave")
        page = await ui.sign_in("dave")

        # The admin resets dave's password: his open session ends at once.
        await admin_call(
            server, "POST", f"/api/admin/users/{dave_id}/password", {"password": TEMPORARY}
        )
        await signed_out(page, "You were signed out. Please sign in again.")

        # Signing in with the temporary password leads to the new-password page, not the app.
        await submit_login(page, "dave", TEMPORARY)
        forced = page.get_by_test_id("force-password-page")
        await expect(forced).to_be_visible()
        await expect(page.get_by_test_id("app-shell")).to_have_count(0)
        current = page.get_by_test_id("current-password")
        await expect(current).to_be_focused()
        await expect(current).to_have_value("")  # never filled in for them
        await screenshot(page, "account-forced-change")
        # Still so after a reload (the flag is the server's, from GET /api/me).
        await page.reload()
        await expect(forced).to_be_visible()

        # Wrong current password: said at that field.
        await current.fill("not the password")
        await page.get_by_test_id("new-password").fill(CHOSEN)
        await page.get_by_test_id("repeat-password").fill(CHOSEN)
        await page.get_by_test_id("force-password-form-submit").click()
        await expect(page.get_by_test_id("current-password-error")).to_have_text(
            "That isn't your current password."
        )
        # A common password: the server's policy, at the new password.
        await current.fill(TEMPORARY)
        await page.get_by_test_id("new-password").fill("password123")
        await page.get_by_test_id("repeat-password").fill("password123")
        await page.get_by_test_id("force-password-form-submit").click()
        await expect(page.get_by_test_id("new-password-error")).to_be_visible()
        await expect(page.get_by_test_id("current-password-error")).to_be_hidden()
        await page.set_viewport_size(MOBILE)
        await screenshot(page, "account-forced-change-mobile")

        # A good one: into the app, connected.
        await page.get_by_test_id("new-password").fill(CHOSEN)
        await page.get_by_test_id("repeat-password").fill(CHOSEN)
        await page.get_by_test_id("force-password-form-submit").click()
        await expect(page.get_by_test_id("app-shell")).to_be_visible()
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        assert (await me(server, "dave", CHOSEN))["must_change_password"] is False

        # The flag set again behind the app's back (as a reset that kept this login would): the
        # next API call answers 403 password_change_required, and the app asks again.
        conn = server.app.container.db.conn
        await conn.execute("UPDATE users SET must_change_password = 1 WHERE id = ?", (dave_id,))
        await conn.commit()
        await page.get_by_test_id("nav-recordings").click()
        await expect(forced).to_be_visible()
        await current.fill(CHOSEN)
        await page.get_by_test_id("new-password").fill(CHANGED)
        await page.get_by_test_id("repeat-password").fill(CHANGED)
        await page.get_by_test_id("force-password-form-submit").click()
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )


@pytest.mark.timeout(120)
async def test_account_page_password_and_sessions(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server, UI(browser, server) as ui:
        ui.problems.allow("/api/account/password", 401)
        await server.add_user("erin")
        laptop = await ui.sign_in("erin")
        phone = await ui.sign_in("erin", viewport=MOBILE)

        await open_account(laptop)
        rows = laptop.get_by_test_id("session")
        await expect(rows).to_have_count(2)
        this = laptop.locator('[data-testid="session"][data-current="true"]')
        await expect(this.get_by_test_id("session-this")).to_have_text("This device")
        await expect(this.get_by_test_id("session-end")).to_have_count(0)
        await expect(this.get_by_test_id("session-device")).to_contain_text("on Linux")
        await expect(this.get_by_test_id("session-meta")).to_contain_text("127.0.0.1")
        await expect(laptop.get_by_test_id("sessions-end-others")).to_be_enabled()
        await screenshot(laptop, "account-page")

        await open_account(phone)
        await expect(phone.get_by_test_id("session")).to_have_count(2)
        await screenshot(phone, "account-page-mobile")
        await phone.get_by_test_id("sessions-end-others").scroll_into_view_if_needed()
        await screenshot(phone, "account-sessions-mobile")

        # The laptop ends the phone's session: the phone is back at sign-in.
        other = laptop.locator('[data-testid="session"][data-current="false"]')
        await other.get_by_test_id("session-end").click()
        await signed_out(phone, "You were signed out. Please sign in again.")
        await expect(rows).to_have_count(1)
        await expect(laptop.get_by_test_id("sessions-end-others")).to_be_disabled()
        await expect(laptop.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )

        # Back in on the phone; the laptop changes the password: the phone is signed out again.
        await submit_login(phone, "erin", PASSWORD)
        await expect(phone.get_by_test_id("app-shell")).to_be_visible()
        form = laptop.get_by_test_id("password-form")
        await form.get_by_test_id("current-password").fill("wrong password")
        await form.get_by_test_id("new-password").fill(CHANGED)
        await form.get_by_test_id("repeat-password").fill(CHANGED)
        await form.get_by_test_id("password-form-submit").click()
        await expect(form.get_by_test_id("current-password-error")).to_have_text(
            "That isn't your current password."
        )
        await form.get_by_test_id("current-password").fill(PASSWORD)
        await form.get_by_test_id("password-form-submit").click()
        toast = laptop.get_by_test_id("toast").filter(has_text="Your password was changed")
        await expect(toast).to_contain_text("Your other devices were signed out.")
        await expect(form.get_by_test_id("current-password")).to_have_value("")
        await signed_out(phone, "You were signed out. Please sign in again.")
        await expect(rows).to_have_count(1)
        await screenshot(laptop, "account-password-changed")
        await expect(laptop.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )

        # The new password works; "Sign out everywhere else" (confirmed) ends the phone again.
        await submit_login(phone, "erin", CHANGED)
        await expect(phone.get_by_test_id("app-shell")).to_be_visible()
        await laptop.get_by_test_id("nav-account").click()  # closes the page
        await expect(laptop.get_by_test_id("account-view")).to_have_count(0)
        await open_account(laptop)
        await expect(rows).to_have_count(2)
        await laptop.get_by_test_id("sessions-end-others").click()
        await expect(laptop.get_by_test_id("confirm-dialog")).to_be_visible()
        await laptop.get_by_test_id("confirm-ok").click()
        await signed_out(phone, "You were signed out. Please sign in again.")
        await expect(rows).to_have_count(1)
        await expect(laptop.get_by_test_id("app-shell")).to_be_visible()


@pytest.mark.timeout(90)
async def test_disabled_account_is_told_on_the_sign_in_page(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with make_server() as server, UI(browser, server) as ui:
        ui.problems.allow("/api/auth/login", 403)
        await server.add_user("root", admin=True)
        frank_id = await server.add_user("frank")
        page = await ui.sign_in("frank")
        await expect(page.get_by_test_id("nav-admin")).to_have_count(0)

        await admin_call(server, "PATCH", f"/api/admin/users/{frank_id}", {"disabled": True})
        await signed_out(page, "Your account has been disabled by an administrator.")
        await expect(page.get_by_test_id("login-notice")).to_have_class("alert alert-warning")
        await screenshot(page, "account-disabled")
        # Signing in again says so too (only with the right password).
        await submit_login(page, "frank", PASSWORD)
        await expect(page.get_by_test_id("login-error")).to_contain_text(
            "Your account has been disabled"
        )

        # An admin sees the Admin button (also on a phone, next to Recordings and Account), and
        # it opens the admin page in the main area.
        root = await ui.sign_in("root", viewport=MOBILE)
        for name in ("nav-recordings", "nav-admin", "nav-account", "sign-out"):
            await expect(root.get_by_test_id(name)).to_be_in_viewport()
        await expect(root.get_by_test_id("current-username")).to_have_text("root")
        await screenshot(root, "account-topbar-admin-mobile")
        await root.get_by_test_id("nav-admin").click()
        await expect(root.get_by_test_id("admin-view")).to_be_visible()
        await expect(root.get_by_test_id("nav-admin")).to_have_attribute("aria-pressed", "true")
        await root.get_by_test_id("nav-account").click()
        await expect(root.get_by_test_id("account-view")).to_be_visible()
        await expect(root.get_by_test_id("admin-view")).to_have_count(0)
