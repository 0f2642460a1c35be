"""The admin page in a real Chromium against a real server: People (add, disable and enable with
the disabled person's open page signed out, reset a password, make and remove admin, delete),
Invitations (a link shown once, copied, revoked), Health (the doctor's checks) and a non-admin
kept out. Screenshots at desktop and phone (390x844) sizes go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
from contextlib import suppress

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import DESKTOP, MOBILE, UI, screenshot
from tests.support import PASSWORD, RunningServer

pytestmark = pytest.mark.browser

ROOT = "root"
NEW_PASSWORD = "plum orchard lantern"
RESET_PASSWORD = "violet harbour 42"


async def open_admin(page: Page) -> Locator:
    await page.get_by_test_id("nav-admin").click()
    view = page.get_by_test_id("admin-view")
    await expect(view).to_be_visible()
    await expect(page.get_by_test_id("nav-admin")).to_have_attribute("aria-pressed", "true")
    return view


def person(view: Locator, name: str) -> Locator:
    return view.locator(f'[data-testid="admin-user"][data-username="{name}"]')


async def user_action(page: Page, view: Locator, name: str, action: str) -> None:
    """Open a person's actions menu and pick one."""
    await person(view, name).get_by_test_id("admin-user-actions").click()
    menu = page.get_by_test_id("admin-menu")
    await expect(menu).to_be_visible()
    await menu.get_by_test_id(f"admin-action-{action}").click()
    await expect(menu).to_be_hidden()


async def confirm(page: Page, *, contains: str | re.Pattern[str] | None = None) -> None:
    dialog = page.get_by_test_id("confirm-dialog")
    await expect(dialog).to_be_visible()
    if contains is not None:
        await expect(dialog).to_contain_text(contains)
    await dialog.get_by_test_id("confirm-ok").click()
    await expect(dialog).to_be_hidden()


async def dismiss_toasts(page: Page) -> None:
    """Close the app's notices (they would cover the page's header in screenshots)."""
    toasts = page.get_by_test_id("toast")
    while await toasts.count():
        with suppress(PlaywrightError):  # it may time out by itself meanwhile
            await toasts.first.get_by_role("button", name="Dismiss").click(timeout=1_000)


async def api_users(server: RunningServer, token: str) -> dict[str, dict[str, object]]:
    response = await server.http.get(
        "/api/admin/users", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return {u["username"]: u for u in response.json()["users"]}


@pytest.mark.timeout(120)
async def test_admin_manages_people(ui: UI) -> None:
    server = ui.server
    await server.add_user(ROOT, admin=True)
    await server.add_user("carol")
    await server.add_user("erin")
    # Refusals the page shows as messages (and so are expected HTTP errors here).
    ui.problems.allow("/api/admin/users", 409)
    ui.problems.allow("/api/admin/users", 400)

    root = await ui.sign_in(ROOT)
    carol = await ui.sign_in("carol")
    view = await open_admin(root)
    await expect(view.get_by_test_id("admin-tab-people")).to_have_attribute("aria-selected", "true")
    for name in (ROOT, "carol", "erin"):
        await expect(person(view, name)).to_be_visible()
    await expect(person(view, ROOT)).to_contain_text("You")
    await expect(person(view, ROOT).get_by_test_id("admin-user-admin")).to_be_visible()
    await expect(person(view, "carol").get_by_test_id("admin-user-status")).to_have_text("Online")
    await expect(person(view, "erin").get_by_test_id("admin-user-status")).to_have_text(
        "Not seen yet"
    )
    await expect(view.get_by_test_id("admin-people-count")).to_have_text("3 people · 2 online")

    # My own row: the actions that would lock me out are not offered, and the menu says why.
    await person(view, ROOT).get_by_test_id("admin-user-actions").click()
    menu = root.get_by_test_id("admin-menu")
    await expect(menu).to_be_visible()
    for action in ("reset-password", "remove-admin", "disable", "delete"):
        await expect(menu.get_by_test_id(f"admin-action-{action}")).to_be_disabled()
    await expect(menu.get_by_test_id("admin-menu-note")).to_contain_text("This is you")
    await root.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(person(view, ROOT).get_by_test_id("admin-user-actions")).to_be_focused()

    # Add a person: a taken name and a weak password are refused in the dialog, then it works.
    await view.get_by_test_id("admin-add-user").click()
    dialog = root.get_by_test_id("admin-add-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("not a commonly used password")
    await dialog.get_by_test_id("admin-new-username").fill("carol")
    await dialog.get_by_test_id("admin-new-password").fill(NEW_PASSWORD)
    await dialog.get_by_test_id("admin-add-submit").click()
    error = dialog.get_by_test_id("admin-add-dialog-error")
    await expect(error).to_have_text("The name “carol” is already taken. Choose another one.")
    await dialog.get_by_test_id("admin-new-username").fill("dave")
    await dialog.get_by_test_id("admin-new-password").fill("password")
    await dialog.get_by_test_id("admin-add-submit").click()
    await expect(error).to_have_text(
        "The password is one of the most common passwords; choose another."
    )
    await dialog.get_by_test_id("admin-new-password-generate").click()
    generated = await dialog.get_by_test_id("admin-new-password").input_value()
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", generated), generated
    await dialog.get_by_test_id("admin-new-password").fill(NEW_PASSWORD)
    await expect(dialog.get_by_test_id("admin-new-must-change")).to_be_checked()
    await screenshot(root, "admin-02-add-person-dialog")
    await dialog.get_by_test_id("admin-add-submit").click()
    await expect(dialog).to_be_hidden()
    dave = person(view, "dave")
    await expect(dave).to_be_visible()
    await expect(dave.get_by_test_id("admin-user-must-change")).to_be_visible()
    await expect(dave.get_by_test_id("admin-user-active")).to_be_visible()
    body = await server.login("dave", NEW_PASSWORD)
    assert body["must_change_password"] is True

    # Disable carol: her open page is signed out at once with the reason; she can't sign in.
    await user_action(root, view, "carol", "disable")
    await confirm(root, contains="signed out on every device")
    await expect(person(view, "carol").get_by_test_id("admin-user-disabled")).to_be_visible()
    await expect(person(view, "carol")).to_have_attribute("data-disabled", "true")
    await expect(carol.get_by_test_id("login-page")).to_be_visible()
    await expect(carol.get_by_test_id("login-notice")).to_contain_text(re.compile("disabled", re.I))
    refused = await server.http.post(
        "/api/auth/login", json={"username": "carol", "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "account_disabled"
    await dismiss_toasts(root)
    await root.mouse.move(0, 0)
    await screenshot(root, "admin-01-people-desktop")

    # Enable her again: she can sign in.
    await user_action(root, view, "carol", "enable")
    await expect(person(view, "carol").get_by_test_id("admin-user-active")).to_be_visible()
    await server.login("carol")

    # Reset carol's password: the old one stops working, the new one must be changed.
    await user_action(root, view, "carol", "reset-password")
    reset = root.get_by_test_id("admin-reset-dialog")
    await expect(reset).to_be_visible()
    await expect(reset).to_contain_text("At least 8 characters")
    await reset.get_by_test_id("admin-reset-password").fill(RESET_PASSWORD)
    await reset.get_by_test_id("admin-reset-submit").click()
    await expect(reset).to_be_hidden()
    await expect(person(view, "carol").get_by_test_id("admin-user-must-change")).to_be_visible()
    old = await server.http.post(
        "/api/auth/login", json={"username": "carol", "password": PASSWORD}
    )
    assert old.status_code == 401
    assert (await server.login("carol", RESET_PASSWORD))["must_change_password"] is True

    # Make erin an admin (after a confirmation), then remove it again.
    await user_action(root, view, "erin", "make-admin")
    await confirm(root, contains="Admins can add, disable and delete accounts")
    await expect(person(view, "erin").get_by_test_id("admin-user-admin")).to_be_visible()
    await expect(person(view, "erin")).to_have_attribute("data-admin", "true")

    # A refusal from the server is said plainly (here the last-admin rule, answered by a stand-in:
    # through the page only the admin's own account can be the last one, and that is not offered).
    erin_path = re.compile(r".*/api/admin/users/\d+$")
    ui.problems.allow(
        f"/api/admin/users/{await person(view, 'erin').get_attribute('data-user-id')}", 409
    )
    await root.route(
        erin_path,
        lambda route: route.fulfill(
            status=409,
            content_type="application/json",
            body='{"error": {"code": "last_admin", "message": "the last admin must stay"}}',
        ),
    )
    await user_action(root, view, "erin", "remove-admin")
    people_error = view.get_by_test_id("admin-people-error")
    await expect(people_error).to_contain_text(
        "erin is the last admin who can sign in. Make someone else an admin first"
    )
    await expect(person(view, "erin")).to_have_attribute("data-admin", "true")
    await root.unroute(erin_path)
    await people_error.get_by_role("button", name="Dismiss").click()
    await expect(people_error).to_be_hidden()

    await user_action(root, view, "erin", "remove-admin")
    await expect(person(view, "erin")).to_have_attribute("data-admin", "false")

    # Delete dave: the confirmation says his messages stay; he is gone from the list and the API.
    await user_action(root, view, "dave", "delete")
    await confirm(root, contains="Their messages stay")
    await expect(person(view, "dave")).to_have_count(0)
    users = await api_users(server, await server.token(ROOT))
    assert "dave" not in users
    assert users["carol"]["must_change_password"] is True
    assert users["erin"]["is_admin"] is False

    # Narrow screen: the table is a list of cards; the menu still opens next to its button.
    await dismiss_toasts(root)
    await root.set_viewport_size(MOBILE)
    await expect(person(view, "carol")).to_be_visible()
    await root.mouse.move(0, 0)
    await screenshot(root, "admin-03-people-mobile")
    await person(view, "erin").get_by_test_id("admin-user-actions").click()
    await expect(root.get_by_test_id("admin-menu")).to_be_visible()
    box = await root.get_by_test_id("admin-menu").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= MOBILE["width"]
    await screenshot(root, "admin-04-people-menu-mobile")
    await person(view, "erin").get_by_test_id("admin-user-actions").click()  # again: closes
    await expect(root.get_by_test_id("admin-menu")).to_be_hidden()

    # Another admin takes root's admin away meanwhile: root's next action says why it failed.
    erin_token = await server.token("erin")
    root_token = await server.token(ROOT)
    users = await api_users(server, root_token)
    made = await server.http.patch(
        f"/api/admin/users/{users['erin']['user_id']}",
        json={"is_admin": True},
        headers={"Authorization": f"Bearer {root_token}"},
    )
    assert made.status_code == 200, made.text
    demoted = await server.http.patch(
        f"/api/admin/users/{users[ROOT]['user_id']}",
        json={"is_admin": False},
        headers={"Authorization": f"Bearer {erin_token}"},
    )
    assert demoted.status_code == 200, demoted.text
    ui.problems.allow(f"/api/admin/users/{users['carol']['user_id']}", 403)
    await user_action(root, view, "carol", "disable")
    await confirm(root)
    await expect(view.get_by_test_id("admin-people-error")).to_have_text(
        "Only admins can do this, and your account is no longer an admin."
    )


@pytest.mark.timeout(90)
async def test_admin_invitations(ui: UI) -> None:
    server = ui.server
    await server.add_user(ROOT, admin=True)
    root = await ui.sign_in(ROOT)
    await root.context.grant_permissions(["clipboard-read", "clipboard-write"])
    view = await open_admin(root)
    # The tabs work from the keyboard too (arrow keys move between them).
    await view.get_by_test_id("admin-tab-people").focus()
    await root.keyboard.press("ArrowRight")
    await expect(view.get_by_test_id("admin-tab-invitations")).to_be_focused()
    await expect(view.get_by_test_id("admin-tab-invitations")).to_have_attribute(
        "aria-selected", "true"
    )
    await expect(view.get_by_test_id("admin-invitations-empty")).to_be_visible()
    await expect(view.get_by_test_id("admin-people")).to_be_hidden()

    # Create a link for 3 people, 1 day, with a note.
    await view.get_by_test_id("admin-new-invitation").click()
    dialog = root.get_by_test_id("admin-invitation-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_test_id("admin-invitation-uses-input").fill("0")
    await expect(dialog.get_by_test_id("admin-invitation-submit")).to_be_disabled()
    await dialog.get_by_test_id("admin-invitation-uses-input").fill("3")
    await dialog.get_by_test_id("admin-invitation-expiry").select_option(label="1 day")
    await dialog.get_by_test_id("admin-invitation-note-input").fill("Reception desk")
    await screenshot(root, "admin-05-new-invitation-dialog")
    await dialog.get_by_test_id("admin-invitation-submit").click()
    await expect(dialog).to_be_hidden()

    # The link, once, with a Copy button.
    created = root.get_by_test_id("admin-invitation-created")
    await expect(created).to_be_visible()
    await expect(created.get_by_test_id("admin-invitation-once")).to_contain_text("shown only once")
    link = await created.get_by_test_id("admin-invitation-link").input_value()
    match = re.fullmatch(re.escape(server.url) + r"/#invite=([A-Za-z0-9_-]{20,})", link)
    assert match, link
    token = match.group(1)
    await created.get_by_test_id("admin-invitation-copy").click()
    await expect(created.get_by_test_id("admin-invitation-copy")).to_have_text("Copied")
    assert await root.evaluate("() => navigator.clipboard.readText()") == link
    await screenshot(root, "admin-06-invitation-link")
    check = await server.http.post("/api/invitations/check", json={"token": token})
    assert check.status_code == 200, check.text
    await created.get_by_test_id("admin-invitation-done").click()
    await expect(created).to_be_hidden()

    # In the list: active, 0 / 3, the note; the token is nowhere on the page any more.
    row = view.get_by_test_id("admin-invitation")
    await expect(row).to_have_count(1)
    await expect(row.get_by_test_id("admin-invitation-state")).to_have_text("Active")
    await expect(row.get_by_test_id("admin-invitation-uses")).to_have_text("0 / 3")
    await expect(row.get_by_test_id("admin-invitation-note")).to_have_text("Reception desk")
    await expect(row.get_by_test_id("admin-invitation-expires")).to_have_text(
        re.compile(r"In (23 h|1 day)")
    )
    assert token not in await root.content()

    # On a phone: a second one, for an admin, then revoke the first.
    await root.set_viewport_size(MOBILE)
    await view.get_by_test_id("admin-new-invitation").click()
    await dialog.get_by_test_id("admin-invitation-is-admin").check()
    await dialog.get_by_test_id("admin-invitation-submit").click()
    await expect(created).to_be_visible()
    await expect(created).to_contain_text("they join as admins")
    await screenshot(root, "admin-07-invitation-link-mobile")
    await created.get_by_test_id("admin-invitation-done").click()
    await expect(row).to_have_count(2)
    first = view.locator('[data-testid="admin-invitation"]', has_text="Reception desk")
    await first.get_by_test_id("admin-invitation-revoke").click()
    await confirm(root, contains="stops working at once")
    await expect(first.get_by_test_id("admin-invitation-state")).to_have_text("Revoked")
    await expect(first.get_by_test_id("admin-invitation-revoke")).to_have_count(0)
    await expect(first.get_by_test_id("admin-invitation-expires")).to_have_text("—")
    gone = await server.http.post("/api/invitations/check", json={"token": token})
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "invitation_revoked"
    await dismiss_toasts(root)
    await screenshot(root, "admin-08-invitations-mobile")
    await root.set_viewport_size(DESKTOP)
    await root.mouse.move(0, 0)
    await screenshot(root, "admin-09-invitations-desktop")


@pytest.mark.timeout(120)
async def test_admin_health(ui: UI) -> None:
    server = ui.server
    await server.add_user(ROOT, admin=True)
    root = await ui.sign_in(ROOT)
    view = await open_admin(root)
    await view.get_by_test_id("admin-tab-health").click()
    health = view.get_by_test_id("admin-health")
    await expect(health).to_have_attribute("data-state", "ready", timeout=60_000)
    checks = health.get_by_test_id("admin-doctor-check")
    assert await checks.count() >= 3
    verdict = health.get_by_test_id("admin-doctor-verdict")
    await expect(verdict).to_have_attribute("data-verdict", re.compile("^(ok|warn|fail)$"))
    statuses = {await c.get_attribute("data-status") for c in await checks.all()}
    assert statuses <= {"ok", "warn", "fail", "skip"}, statuses
    # Anything not ok comes with what to do.
    for row in await health.locator('[data-testid="admin-doctor-check"][data-status="fail"]').all():
        await expect(row.get_by_test_id("admin-doctor-fix")).to_be_visible()
    await expect(health.get_by_test_id("admin-doctor-when")).to_contain_text("Checked at")
    await root.mouse.move(0, 0)
    await screenshot(root, "admin-10-health-desktop")

    # Again, on a phone.
    await expect(health).to_have_attribute("data-runs", "1")
    await health.get_by_test_id("admin-doctor-run").click()
    await expect(health).to_have_attribute("data-runs", "2", timeout=60_000)
    await expect(health).to_have_attribute("data-state", "ready")
    await root.set_viewport_size(MOBILE)
    await expect(verdict).to_be_visible()
    await screenshot(root, "admin-11-health-mobile")

    # The tab is remembered for the next visit.
    await root.get_by_test_id("nav-admin").click()
    await expect(view).to_be_hidden()
    view = await open_admin(root)
    await expect(view.get_by_test_id("admin-tab-health")).to_have_attribute("aria-selected", "true")
    await expect(view.get_by_test_id("admin-health")).to_have_attribute(
        "data-state", "ready", timeout=60_000
    )

    # A server without the endpoint (an older version): the tab says so instead of failing.
    ui.problems.allow("/api/admin/doctor", 404)
    await root.route(
        "**/api/admin/doctor",
        lambda route: route.fulfill(
            status=404,
            content_type="application/json",
            body='{"error": {"code": "not_found", "message": "not found"}}',
        ),
    )
    await view.get_by_test_id("admin-doctor-run").click()
    unavailable = view.get_by_test_id("admin-doctor-unavailable")
    await expect(unavailable).to_contain_text("Health checks are not available")
    await expect(view.get_by_test_id("admin-doctor-run")).to_be_hidden()


async def test_non_admin_has_no_admin_page(ui: UI) -> None:
    server = ui.server
    await server.add_user(ROOT, admin=True)
    await server.add_user("carol")
    carol = await ui.sign_in("carol")
    await expect(carol.get_by_test_id("nav-recordings")).to_be_visible()
    await expect(carol.get_by_test_id("nav-admin")).to_have_count(0)
    token = await server.token("carol")
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in (
        ("GET", "/api/admin/users"),
        ("GET", "/api/admin/invitations"),
        ("GET", "/api/admin/doctor"),
        ("POST", "/api/admin/invitations"),
    ):
        response = await server.http.request(
            method, path, headers=headers, json={} if method == "POST" else None
        )
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "forbidden"
