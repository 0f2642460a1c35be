"""A camera call between two Chromium contexts over HTTPS under a name that is not localhost
(`appliance.test`, mapped to 127.0.0.1 by Chromium's host resolver rules and added to the
certificate through tls.extra_names), trusting only the box's generated key; and the same page
over plain HTTP under that name, where the browser gives no camera: the call explains why.

Everything goes to 127.0.0.1: the web service (both listeners) and a real coturn relay."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect

from appliance.adapters import certificates
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    MOBILE,
    SCREENSHOTS,
    UI,
    screenshot,
    submit_login,
)
from tests.support import RunningServer
from tests.tls_support import HttpsServer, running_https
from tests.turn_support import free_udp_tcp_port, running_turn, turn_overrides

pytestmark = pytest.mark.browser

NAME = "appliance.test"
PLAYING = """v => v.videoWidth > 0 && !v.paused && v.readyState >= 2 && v.currentTime > 0"""
SECURE_MESSAGE = "Calls need a secure (https) connection to the appliance."


def spki_pin(cert_pem: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the leaf, as Chromium's SPKI list takes it."""
    return base64.b64encode(certificates.spki_sha256(cert_pem)).decode()


@asynccontextmanager
async def chromium_trusting(pin: str) -> AsyncIterator[Browser]:
    """A Chromium of its own: `appliance.test` resolves to 127.0.0.1, and the one key is
    trusted (no other certificate error is ignored)."""
    args = [
        *CHROMIUM_ARGS,
        f"--host-resolver-rules=MAP {NAME} 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={pin}",
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=args, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Site:
    """What `UI` needs of a server (its URL), pointing at one of the box's addresses."""

    url: str
    app: Any


@asynccontextmanager
async def https_world(tmp_path: Path, webui_dist: Path) -> AsyncIterator[HttpsServer]:
    turn = {**turn_overrides(allow_loopback_peers=True), "tls_port": free_udp_tcp_port()}
    overrides: dict[str, dict[str, Any]] = {
        "web": {"presence_grace": 0, "webui_dir": str(webui_dist)},
        "tls": {"extra_names": [NAME]},
        "calls": {"force_relay": True},
        "turn": turn,
    }
    async with (
        running_https(tmp_path / "data", overrides) as server,
        running_turn(server.settings),
    ):
        yield server


async def sign_in(ui: UI, url: str, name: str, viewport: ViewportSize | None = None) -> Page:
    page = await ui.page(viewport)
    await page.goto(url)
    await expect(page.get_by_test_id("login-page")).to_be_visible()
    await submit_login(page, name)
    await expect(page.get_by_test_id("app-shell")).to_be_visible()
    await expect(page.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "connected"
    )
    return page


@pytest.mark.timeout(150)
async def test_call_over_https_under_a_lan_name(tmp_path: Path, webui_dist: Path) -> None:
    async with https_world(tmp_path, webui_dist) as server:
        leaf_pem = server.app.container.tls.cert_path.read_bytes()
        info = server.app.container.tls.info
        assert info is not None and NAME in info.names
        auth = server.app.container.auth
        alice_id = (await auth.create_user("alice", "correct horse battery", is_admin=False)).id
        bob_id = (await auth.create_user("bob", "correct horse battery", is_admin=False)).id
        await server.app.container.chat.open_direct(alice_id, bob_id)
        https_url = f"https://{NAME}:{server.https_port}/"
        http_url = f"http://{NAME}:{server.http_port}/"

        async with (
            chromium_trusting(spki_pin(leaf_pem)) as browser,
            UI(browser, cast(RunningServer, Site(https_url, server.app))) as ui,
        ):
            alice = await sign_in(ui, https_url, "alice")
            bob = await sign_in(ui, https_url, "bob")
            assert await alice.evaluate("() => window.isSecureContext")
            assert alice.url.startswith(https_url)

            await alice.locator('[data-testid="room"][data-room-name="bob"]').click()
            await alice.get_by_test_id("conversation").get_by_test_id("call-video").click()
            await expect(bob.get_by_test_id("incoming-call")).to_be_visible()
            await bob.get_by_test_id("incoming-accept").click()
            for page in (alice, bob):
                view = page.get_by_test_id("call-view")
                await expect(view).to_have_attribute("data-connection", "connected", timeout=30_000)
                remote = view.get_by_test_id("call-remote-video")
                await page.wait_for_function(PLAYING, arg=await remote.element_handle())
            await alice.mouse.move(0, 0)
            await screenshot(alice, "https-call-01-in-call")
            await alice.get_by_test_id("call-view").get_by_test_id("call-hangup").click()
            await expect(bob.get_by_test_id("call-ended")).to_be_visible()

            # The same page over plain HTTP under the same name: not a secure context, so no
            # camera; the call says why (the browser is on loopback, so it is not redirected).
            plain = await sign_in(ui, http_url, "alice", MOBILE)
            assert plain.url.startswith(http_url)
            assert not await plain.evaluate("() => window.isSecureContext")
            await plain.locator('[data-testid="room"][data-room-name="bob"]').click()
            await plain.get_by_test_id("conversation").get_by_test_id("call-video").click()
            ended = plain.get_by_test_id("call-view").get_by_test_id("call-ended")
            await expect(ended).to_be_visible()
            await expect(ended.get_by_test_id("call-ended-text")).to_have_text(SECURE_MESSAGE)
            await screenshot(plain, "https-call-02-plain-http-refused")
            await expect(bob.get_by_test_id("incoming-call")).to_be_hidden()

            # /trust, as a phone sees it over plain HTTP.
            trust = await ui.page(MOBILE)
            await trust.goto(f"http://{NAME}:{server.http_port}/trust")
            await expect(trust.get_by_role("heading", name="Trust this appliance")).to_be_visible()
            await expect(trust.locator("figure.qr svg")).to_be_visible()
            assert await trust.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
            await trust.locator("summary", has_text="iPhone and iPad").click()
            await full_page(trust, "https-call-03-trust-mobile")
            await trust.set_viewport_size({"width": 1280, "height": 900})
            await full_page(trust, "https-call-04-trust-desktop")


async def full_page(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
