"""The first screens of the web UI in a real Chromium: sign-in, the people list with live
presence, sign-out, and keeping the session alive across access-token expiry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocket, expect

from tests.browser.conftest import MOBILE, UI, ServerFactory, screenshot, submit_login
from tests.support import RunningServer

pytestmark = pytest.mark.browser


def person(page: Page, name: str) -> Any:
    return page.locator(f'[data-testid="person"][data-username="{name}"]')


async def expect_presence(page: Page, name: str, presence: str, status: str) -> None:
    row = person(page, name)
    await expect(row).to_have_attribute("data-presence", presence)
    await expect(row.get_by_test_id("presence-dot")).to_have_attribute("data-presence", presence)
    await expect(row.get_by_test_id("person-status")).to_have_text(status)


async def test_wrong_password_shows_error(server: RunningServer, ui: UI) -> None:
    await server.add_user("alice")
    ui.problems.allow("/api/auth/login", 401)
    page = await ui.open()
    await expect(page).to_have_title("Sign in · Appliance")
    await expect(page.get_by_label("Username")).to_be_focused()
    await screenshot(page, "01-login")

    await page.get_by_test_id("login-submit").click()
    error = page.get_by_test_id("login-error")
    await expect(error).to_have_text("Enter your username and password.")

    await submit_login(page, "alice", "not the password")
    await expect(error).to_have_text("Wrong username or password.")
    await expect(page.get_by_test_id("login-submit")).to_be_enabled()
    await expect(page.get_by_label("Password")).to_be_focused()
    await expect(page.get_by_test_id("app-shell")).to_have_count(0)
    await screenshot(page, "02-login-error")


async def test_rate_limited_login_shows_the_wait(
    make_server: ServerFactory, browser: Browser
) -> None:
    limits = {"login_free_failures": 1, "login_base_delay": 30.0}
    async with make_server(auth=limits) as server, UI(browser, server) as ui:
        await server.add_user("alice")
        ui.problems.allow("/api/auth/login", 401)
        ui.problems.allow("/api/auth/login", 429)
        page = await ui.open()
        await submit_login(page, "alice", "wrong once")
        await expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
        await page.get_by_test_id("login-submit").click()
        await expect(page.get_by_test_id("login-error")).to_have_text(
            "Too many sign-in attempts. Try again in 30 seconds."
        )
        await expect(page.get_by_test_id("login-submit")).to_be_disabled()
        await screenshot(page, "03-login-rate-limited")


async def test_presence_is_live_between_two_browsers(server: RunningServer, ui: UI) -> None:
    await server.add_user("alice", admin=True)
    await server.add_user("bob")
    await server.add_user("carol")

    alice = await ui.sign_in("alice")
    await expect(alice).to_have_title("Appliance")
    await expect(alice.get_by_test_id("current-username")).to_have_text("alice")
    await expect(alice.get_by_test_id("empty-state")).to_contain_text(
        "Select a person to start a conversation"
    )
    # Everyone but me, each with a presence dot; no one else is on yet.
    await expect(alice.get_by_test_id("person")).to_have_count(2)
    await expect(person(alice, "alice")).to_have_count(0)
    await expect_presence(alice, "bob", "offline", "offline")
    await expect_presence(alice, "carol", "offline", "offline")

    bob = await ui.sign_in("bob")
    await expect_presence(alice, "bob", "online", "online")
    await expect_presence(bob, "alice", "online", "online")
    await expect(alice.get_by_test_id("people-count")).to_have_text("1 online")
    await expect(alice.get_by_test_id("person").first).to_have_attribute("data-username", "bob")
    await screenshot(alice, "04-shell-peer-online")

    await person(alice, "bob").click()
    conversation = alice.get_by_test_id("conversation")
    await expect(conversation).to_have_attribute("data-username", "bob")
    await expect(conversation.get_by_test_id("conversation-status")).to_have_text("online")
    await screenshot(alice, "05-shell-conversation")

    # Bob signs out: he is back at sign-in, and alice sees him go offline.
    await bob.get_by_test_id("sign-out").click()
    await expect(bob.get_by_test_id("login-notice")).to_have_text("You have signed out.")
    await expect_presence(alice, "bob", "offline", "last seen just now")
    await expect(conversation.get_by_test_id("conversation-status")).to_have_text(
        "last seen just now"
    )
    await screenshot(alice, "06-shell-peer-offline")

    # Bob comes back, then closes his tab.
    await submit_login(bob, "bob")
    await expect(bob.get_by_test_id("app-shell")).to_be_visible()
    await expect_presence(alice, "bob", "online", "online")
    await bob.close()
    await expect_presence(alice, "bob", "offline", "last seen just now")
    await expect(alice.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "connected"
    )


async def test_dropped_connection_shows_reconnecting_and_recovers(
    server: RunningServer, ui: UI
) -> None:
    await server.add_user("alice")
    await server.add_user("bob")
    alice = await ui.sign_in("alice")
    bob = await ui.sign_in("bob")
    await expect_presence(alice, "bob", "online", "online")

    await alice.context.set_offline(True)  # alice's network drops
    status = alice.get_by_test_id("connection-status")
    await expect(status).to_have_attribute("data-state", "reconnecting")
    await expect(status).to_have_text("Reconnecting…")
    await expect_presence(bob, "alice", "offline", "last seen just now")
    await screenshot(alice, "11-reconnecting")
    await alice.context.set_offline(False)

    # socket.io reconnects by itself with the current token; presence comes back.
    await expect(status).to_have_attribute("data-state", "connected")
    await expect(bob.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "connected"
    )
    await expect_presence(alice, "bob", "online", "online")
    await expect_presence(bob, "alice", "online", "online")


async def test_sign_out_returns_to_login_and_forgets_the_session(
    server: RunningServer, ui: UI
) -> None:
    await server.add_user("alice")
    page = await ui.sign_in("alice")

    # A reload keeps this tab signed in.
    await page.reload()
    await expect(page.get_by_test_id("current-username")).to_have_text("alice")
    await expect(page.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "connected"
    )

    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("login-page")).to_be_visible()
    await expect(page.get_by_test_id("login-notice")).to_have_text("You have signed out.")
    await expect(page).to_have_title("Sign in · Appliance")
    await screenshot(page, "09-signed-out")

    await page.reload()
    await expect(page.get_by_test_id("login-page")).to_be_visible()
    await expect(page.get_by_test_id("login-notice")).to_have_count(0)
    assert await page.evaluate("() => sessionStorage.length") == 0


async def test_revoked_session_returns_to_login_with_a_message(
    server: RunningServer, ui: UI
) -> None:
    await server.add_user("alice")
    page = await ui.sign_in("alice")
    stored = await page.evaluate("() => JSON.parse(sessionStorage.getItem('appliance.session.v1'))")
    # The same login ended elsewhere (e.g. a copy of this tab signed out).
    response = await server.http.post(
        "/api/auth/logout", headers={"Authorization": f"Bearer {stored['access']}"}
    )
    assert response.status_code == 204
    await expect(page.get_by_test_id("login-notice")).to_have_text(
        "You were signed out. Please sign in again."
    )


async def test_mobile_layout(server: RunningServer, ui: UI) -> None:
    await server.add_user("alice")
    await server.add_user("bob")
    await server.add_user("margaret.hamilton")
    await server.user_socket("bob")

    page = await ui.open(MOBILE)
    await screenshot(page, "07-mobile-login")
    await submit_login(page, "alice")
    await expect(page.get_by_test_id("app-shell")).to_be_visible()
    await expect_presence(page, "bob", "online", "online")
    await expect_presence(page, "margaret.hamilton", "offline", "offline")
    # On a phone the list fills the screen; the conversation replaces it.
    await expect(page.get_by_test_id("main")).to_be_hidden()
    await expect(page.get_by_test_id("sign-out")).to_be_visible()
    await screenshot(page, "08-mobile-people")

    await person(page, "bob").click()
    await expect(page.get_by_test_id("conversation")).to_be_visible()
    await expect(page.get_by_test_id("people")).to_be_hidden()
    await screenshot(page, "10-mobile-conversation")
    await page.get_by_test_id("back-to-people").click()
    await expect(page.get_by_test_id("people")).to_be_visible()
    await expect(person(page, "bob")).to_be_focused()

    no_overflow = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert await page.evaluate(no_overflow)


async def test_token_refresh_keeps_the_socket_open(
    make_server: ServerFactory, browser: Browser
) -> None:
    """With 4 s access tokens the page refreshes about every 2.4 s and re-authenticates its socket
    (auth:refresh), so the server never closes it: one WebSocket, open throughout."""
    async with make_server(auth={"access_ttl": 4}) as server, UI(browser, server) as ui:
        await server.add_user("alice")
        page = await ui.page()
        sockets: list[WebSocket] = []
        page.on("websocket", lambda ws: sockets.append(ws))
        await page.goto(server.url)
        await submit_login(page, "alice")
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        for _ in range(2):  # ~5 s: past the first token's expiry (at most 4 s)
            async with page.expect_response("**/api/auth/refresh", timeout=10_000) as info:
                pass
            assert (await info.value).status == 200
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        assert len(sockets) == 1
        assert not sockets[0].is_closed()


class Frames:
    """Socket.IO frames a page's WebSockets receive, to await server events from the page side."""

    def __init__(self, page: Page) -> None:
        self.received: list[str] = []
        self._arrived = asyncio.Event()
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, payload: str | bytes) -> None:
        self.received.append(payload if isinstance(payload, str) else "")
        self._arrived.set()

    def count(self, prefix: str) -> int:
        return sum(frame.startswith(prefix) for frame in self.received)

    async def wait_count(self, prefix: str, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while self.count(prefix) < count:
                self._arrived.clear()
                await self._arrived.wait()


async def test_expired_socket_is_recovered_with_one_refresh(
    make_server: ServerFactory, browser: Browser
) -> None:
    """If the timed refresh never runs (page timers frozen, like a laptop waking from sleep),
    the server closes the socket with session:close token_expired; the page refreshes over HTTP
    and reconnects, staying signed in."""
    overrides = {"auth": {"access_ttl": 2}, "web": {"presence_grace": 0}}
    async with make_server(**overrides) as server, UI(browser, server) as ui:
        await server.add_user("alice")
        page = await ui.page()
        frames = Frames(page)
        await page.clock.install()
        await page.goto(server.url)
        await page.clock.pause_at(time.time() + 1)  # from now on, page timers never fire
        await submit_login(page, "alice")
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        # Each expiry: session:close from the server, one refresh, a Socket.IO CONNECT again
        # (over the same WebSocket: the engine.io connection stays up). Twice.
        closed = '42["session:close",{"reason":"token_expired"'
        await frames.wait_count(closed, 2)
        await frames.wait_count("40{", 3)
        await expect(page.get_by_test_id("app-shell")).to_be_visible()
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
