"""Invitation links in a real Chromium against the real server: an admin makes a link through the
API, a new person opens it (`/#invite=<token>`), picks a name and a password (policy errors shown
at the field) and arrives signed in, visible to the others; expired, used-up, withdrawn and
unknown links each get their own page with a way to sign in."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, MOBILE, UI, ServerFactory, screenshot
from tests.support import PASSWORD, RunningServer

pytestmark = pytest.mark.browser

ORGANISATION = "Hamilton & Co"
NEW_PASSWORD = "plum orchard lantern"


def person(page: Page, name: str) -> Any:
    return page.locator(f'[data-testid="person"][data-username="{name}"]')


async def invite(server: RunningServer, admin: str, **body: Any) -> dict[str, Any]:
    """A fresh invitation made by `admin` through the admin API."""
    token = await server.token(admin)
    response = await server.http.post(
        "/api/admin/invitations", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    invitation: dict[str, Any] = response.json()["invitation"]
    return invitation


async def open_link(ui: UI, url: str, viewport: Any = None) -> Page:
    page = await ui.page(viewport)
    await page.goto(url)
    return page


@pytest.mark.timeout(120)
async def test_accept_an_invitation_and_arrive_signed_in(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with (
        make_server(organisation={"name": ORGANISATION}) as server,
        UI(browser, server) as ui,
    ):
        ui.problems.allow("/api/invitations/accept", 400)
        ui.problems.allow("/api/invitations/accept", 409)
        ui.problems.allow("/api/invitations/check", 410)
        await server.add_user("root", admin=True)
        await server.add_user("bob")
        bob = await ui.sign_in("bob")
        invitation = await invite(server, "root", max_uses=1, note="for Carol")
        assert invitation["url"] == f"{server.url}/#invite={invitation['token']}"

        page = await open_link(ui, invitation["url"])
        form = page.get_by_test_id("invite-form")
        await expect(form).to_be_visible()
        # The token leaves the address bar (no bookmark, no history entry carries it).
        assert "invite" not in page.url and invitation["token"] not in page.url
        await expect(page.get_by_test_id("invite-organisation")).to_have_text(ORGANISATION)
        await expect(page.get_by_test_id("invite-expiry")).to_contain_text("expires on")
        await expect(page.get_by_test_id("invite-admin")).to_have_count(0)
        await expect(page.get_by_test_id("invite-username")).to_be_focused()
        await screenshot(page, "invite-form")

        # Checked in the page before the server is asked: the two passwords differ.
        await page.get_by_test_id("invite-username").fill("carol")
        await page.get_by_test_id("invite-password").fill(NEW_PASSWORD)
        await page.get_by_test_id("invite-repeat").fill(NEW_PASSWORD + "x")
        await page.get_by_test_id("invite-submit").click()
        await expect(page.get_by_test_id("invite-repeat-error")).to_have_text(
            "The two passwords differ."
        )
        await expect(page.get_by_test_id("invite-repeat")).to_have_attribute("aria-invalid", "true")

        # The server's policy: a common password, shown at the password field.
        await page.get_by_test_id("invite-password").fill("password123")
        await page.get_by_test_id("invite-repeat").fill("password123")
        await page.get_by_test_id("invite-submit").click()
        error = page.get_by_test_id("invite-password-error")
        await expect(error).to_be_visible()
        await expect(page.get_by_test_id("invite-password")).to_be_focused()
        await expect(page.get_by_test_id("invite-repeat-error")).to_be_hidden()
        await screenshot(page, "invite-weak-password")
        await page.set_viewport_size(MOBILE)
        await error.scroll_into_view_if_needed()
        await screenshot(page, "invite-weak-password-mobile")
        await page.set_viewport_size(DESKTOP)

        # A taken name, shown at the username field.
        await page.get_by_test_id("invite-username").fill("bob")
        await page.get_by_test_id("invite-password").fill(NEW_PASSWORD)
        await page.get_by_test_id("invite-repeat").fill(NEW_PASSWORD)
        await page.get_by_test_id("invite-submit").click()
        await expect(page.get_by_test_id("invite-username-error")).to_have_text(
            "That username is taken. Choose another one."
        )
        await expect(error).to_be_hidden()

        # And in: carol's app, connected; bob sees her in People.
        await page.get_by_test_id("invite-username").fill("carol")
        await page.get_by_test_id("invite-submit").click()
        await expect(page.get_by_test_id("app-shell")).to_be_visible()
        await expect(page.get_by_test_id("current-username")).to_have_text("carol")
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        await expect(page.get_by_test_id("nav-admin")).to_have_count(0)
        await expect(person(bob, "carol")).to_be_visible()
        await expect(person(bob, "carol").get_by_test_id("person-status")).to_have_text("online")
        await screenshot(page, "invite-signed-in")
        # A reload keeps her signed in (the token pair was stored like a sign-in's).
        await page.reload()
        await expect(page.get_by_test_id("current-username")).to_have_text("carol")
        # She can sign in with what she chose.
        assert (await server.login("carol", NEW_PASSWORD))["must_change_password"] is False

        # The one-use link is spent now.
        again = await open_link(ui, invitation["url"], MOBILE)
        await expect(again.get_by_test_id("invite-bad-card")).to_have_attribute(
            "data-reason", "used_up"
        )


async def expect_bad_page(page: Page, reason: str, title: str) -> None:
    card = page.get_by_test_id("invite-bad-card")
    await expect(card).to_have_attribute("data-reason", reason)
    await expect(page.get_by_test_id("invite-bad-title")).to_have_text(title)
    await expect(page.get_by_test_id("invite-ask")).to_contain_text(
        "Ask your admin for a new link."
    )
    await expect(page.get_by_test_id("invite-form")).to_have_count(0)
    assert "invite" not in page.url


@pytest.mark.timeout(120)
async def test_bad_invitation_links_get_a_page_each(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with (
        make_server(
            organisation={"name": ORGANISATION}, auth={"invitation_signups_per_hour": 100}
        ) as server,
        UI(browser, server) as ui,
    ):
        ui.problems.allow("/api/invitations/check", 404)
        ui.problems.allow("/api/invitations/check", 410)
        await server.add_user("root", admin=True)
        admin = {"Authorization": f"Bearer {await server.token('root')}"}

        # Expired: made, then its end moved into the past in the database.
        expired = await invite(server, "root")
        conn = server.app.container.db.conn
        await conn.execute(
            "UPDATE invitations SET expires_at = ? WHERE id = ?",
            (time.time() - 60, expired["id"]),
        )
        await conn.commit()
        # Used up: its one use taken through the API.
        used = await invite(server, "root", max_uses=1)
        accepted = await server.http.post(
            "/api/invitations/accept",
            json={"token": used["token"], "username": "dora", "password": PASSWORD},
        )
        assert accepted.status_code == 201, accepted.text
        # Withdrawn by the admin.
        revoked = await invite(server, "root", max_uses=5)
        gone = await server.http.delete(f"/api/admin/invitations/{revoked['id']}", headers=admin)
        assert gone.status_code == 204, gone.text

        cases = [
            (expired["url"], "expired", "This invitation has expired"),
            (used["url"], "used_up", "This invitation has already been used"),
            (revoked["url"], "revoked", "This invitation was withdrawn"),
            (
                f"{server.url}/#invite=AAAAAAAAAAAAAAAAAAAAAA",
                "invalid",
                "This invitation link doesn't work",
            ),
        ]
        for url, reason, title in cases:
            for viewport, suffix in ((None, ""), (MOBILE, "-mobile")):
                page = await open_link(ui, url, viewport)
                await expect_bad_page(page, reason, title)
                await screenshot(page, f"invite-{reason.replace('_', '-')}{suffix}")
                await page.context.close()
                ui.contexts.remove(page.context)

        # A mangled link (cut short, odd characters) is "doesn't work" without asking the server.
        page = await open_link(ui, f"{server.url}/#invite=abc%20def")
        await expect_bad_page(page, "invalid", "This invitation link doesn't work")
        # The page's way out: the sign-in page.
        await page.get_by_test_id("invite-sign-in").click()
        await expect(page.get_by_test_id("login-page")).to_be_visible()
        await expect(page.get_by_test_id("login-organisation")).to_contain_text(ORGANISATION)
