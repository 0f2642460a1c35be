"""Fixtures for tests that drive Debian's Chromium through Playwright against a real server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.support import PASSWORD, RunningServer, running_server

REPO = Path(__file__).resolve().parents[2]
WEBUI_DIST = REPO / "webui" / "dist"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
MOBILE: ViewportSize = {"width": 390, "height": 844}

expect.set_options(timeout=10_000)


@pytest.fixture
def webui_dist() -> Path:
    if not (WEBUI_DIST / "index.html").is_file():
        pytest.fail(
            f"the web UI is not built ({WEBUI_DIST / 'index.html'} is missing): "
            "run `npm ci && npm run build` in webui/ first",
            pytrace=False,
        )
    return WEBUI_DIST


ServerFactory = Callable[..., AbstractAsyncContextManager[RunningServer]]


@pytest.fixture
def make_server(tmp_path: Path, webui_dist: Path) -> ServerFactory:
    """`async with make_server(auth={...}) as server:` with the built UI and no presence grace."""

    def factory(**sections: dict[str, Any]) -> AbstractAsyncContextManager[RunningServer]:
        overrides: dict[str, dict[str, Any]] = {
            "web": {"presence_grace": 0, "webui_dir": str(webui_dist)}
        }
        for name, values in sections.items():
            overrides.setdefault(name, {}).update(values)
        return running_server(tmp_path / "data", overrides)

    return factory


@pytest.fixture
async def server(make_server: ServerFactory) -> AsyncIterator[RunningServer]:
    async with make_server() as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Problems:
    """Console errors, page errors and failed responses a page ran into."""

    allowed_statuses: set[tuple[str, int]] = field(default_factory=set)
    items: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.items.append(f"page error: {error}"))
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every non-2xx fetch as "Failed to load resource"; those are judged
        # by status in _response instead.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.items.append(f"console error: {message.text}")

    def _response(self, response: Response) -> None:
        path = re.sub(r"^https?://[^/]+", "", response.url)
        if response.status >= 400 and (path, response.status) not in self.allowed_statuses:
            self.items.append(f"HTTP {response.status} for {response.request.method} {path}")

    def _failed(self, request: Any) -> None:
        # Requests cut off by navigation or a closing page are normal; anything else is not.
        failure = request.failure or ""
        if "ERR_ABORTED" not in failure:
            self.items.append(f"request failed: {request.method} {request.url} {failure}")

    def allow(self, path: str, status: int) -> None:
        self.allowed_statuses.add((path, status))


@dataclass
class UI:
    """Browser contexts (one per person) against one server."""

    browser: Browser
    server: RunningServer
    problems: Problems = field(default_factory=Problems)
    contexts: list[BrowserContext] = field(default_factory=list)
    #: Scripts run in every page before its own (test hooks, e.g. recording media tracks).
    init_scripts: list[str] = field(default_factory=list)

    async def page(self, viewport: ViewportSize | None = None) -> Page:
        context = await self.browser.new_context(
            viewport=viewport or DESKTOP, locale="en-GB", timezone_id="UTC"
        )
        for script in self.init_scripts:
            await context.add_init_script(script)
        self.contexts.append(context)
        page = await context.new_page()
        self.problems.watch(page)
        return page

    async def open(self, viewport: ViewportSize | None = None) -> Page:
        page = await self.page(viewport)
        await page.goto(self.server.url)
        await expect(page.get_by_test_id("login-page")).to_be_visible()
        return page

    async def sign_in(
        self, name: str, *, password: str = PASSWORD, viewport: ViewportSize | None = None
    ) -> Page:
        page = await self.open(viewport)
        await submit_login(page, name, password)
        await expect(page.get_by_test_id("app-shell")).to_be_visible()
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()
        self.contexts.clear()

    async def __aenter__(self) -> UI:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
        if exc_info[0] is None:
            assert self.problems.items == [], self.problems.items


async def submit_login(page: Page, name: str, password: str = PASSWORD) -> None:
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_test_id("login-submit").click()


@pytest.fixture
async def ui(server: RunningServer, browser: Browser) -> AsyncIterator[UI]:
    """Pages against the default server; fails the test on console errors or stray HTTP errors."""
    async with UI(browser, server) as session:
        yield session


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled")
