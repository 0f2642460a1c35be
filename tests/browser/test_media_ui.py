"""Sharing files in a real Chromium against a real store (`rclone serve s3`): the attach button
and drag-and-drop, the pre-signed upload with progress, live delivery, image thumbnails that load
(and open full size), players, file cards that download, and a refused type shown on the item."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, FilePayload, Locator, Page, Route, expect

from tests.browser.conftest import MOBILE, UI, ServerFactory, screenshot
from tests.store_support import running_store, storage_overrides
from tests.support import RunningServer, make_settings

pytestmark = pytest.mark.browser

PDF = (
    (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
    + b"%"
    + b"x" * 1200
    + b"\n"
)


def png(width: int, height: int) -> bytes:
    """A real PNG: a diagonal indigo-to-teal gradient."""
    rows = b""
    for y in range(height):
        rows += b"\x00"
        for x in range(width):
            t = (x + y) / (width + height)
            rows += bytes(
                (int(79 * (1 - t) + 20 * t), int(70 * (1 - t) + 184 * t), 229 - int(80 * t))
            )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A short 440 Hz tone, 8-bit mono PCM."""
    import math

    samples = bytes(
        128 + int(60 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))
    )
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    return header + fmt + b"data" + struct.pack("<I", len(samples)) + samples


@asynccontextmanager
async def media_server(make_server: ServerFactory, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The appliance with its managed store running (as tests/test_media.py's world())."""
    storage = storage_overrides()
    settings = make_settings(tmp_path / "data", {"storage": storage})
    async with running_store(settings), make_server(storage=storage) as server:
        yield server


def room(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="room"][data-room-name="{name}"]')


def with_type(page: Page, content_type: str) -> Locator:
    return page.get_by_test_id("conversation").locator(
        f'[data-testid="message"][data-content-type="{content_type}"]'
    )


async def attach(page: Page, name: str, mime: str, data: bytes) -> None:
    async with page.expect_file_chooser() as chooser_info:
        await page.get_by_test_id("attach").click()
    chooser = await chooser_info.value
    await chooser.set_files(files=[FilePayload(name=name, mimeType=mime, buffer=data)])


async def drop_file(page: Page, name: str, mime: str, data: bytes) -> None:
    """Drag a file over the conversation and drop it, as the OS would."""
    transfer = await page.evaluate_handle(
        """([name, mime, bytes]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            return dt;
        }""",
        [name, mime, list(data)],
    )
    target = page.get_by_test_id("message-list")
    await target.dispatch_event("dragenter", {"dataTransfer": transfer})
    await expect(page.get_by_test_id("drop-zone")).to_be_visible()
    await target.dispatch_event("dragover", {"dataTransfer": transfer})
    await target.dispatch_event("drop", {"dataTransfer": transfer})
    await expect(page.get_by_test_id("drop-zone")).to_be_hidden()


async def image_loaded(page: Page, message: Locator) -> None:
    img = message.get_by_test_id("attachment-img")
    await expect(message.get_by_test_id("attachment-image")).to_have_attribute(
        "data-state", "loaded"
    )
    handle = await img.element_handle()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)


@pytest.mark.timeout(120)
async def test_share_image_file_and_audio(
    make_server: ServerFactory, browser: Browser, tmp_path: Path
) -> None:
    picture = png(480, 320)
    async with media_server(make_server, tmp_path) as server, UI(browser, server) as ui:
        ui.problems.allow("/api/media/uploads", 415)
        alice_id = await server.add_user("alice")
        bob_id = await server.add_user("bob")
        await server.app.container.chat.open_direct(alice_id, bob_id)
        alice = await ui.sign_in("alice")
        bob = await ui.sign_in("bob")
        await room(alice, "bob").click()
        await room(bob, "alice").click()
        await expect(alice.get_by_test_id("conversation-empty")).to_be_visible()

        # An image with the composer's text as its caption, through the attach button.
        composer = alice.get_by_test_id("composer")
        await composer.fill("The view from the hut")
        await attach(alice, "sunset.png", "image/png", picture)
        await expect(composer).to_have_value("")
        sent = with_type(alice, "image/png")
        await expect(sent).to_have_attribute("data-state", "sent")
        await expect(alice.get_by_test_id("upload")).to_have_count(0)
        await image_loaded(alice, sent)

        # Bob sees it live: the thumbnail loads, the caption is under it.
        received = with_type(bob, "image/png")
        await expect(received).to_be_visible()
        await image_loaded(bob, received)
        await expect(received.get_by_test_id("message-text")).to_have_text("The view from the hut")
        natural = await received.get_by_test_id("attachment-img").evaluate(
            "img => [img.naturalWidth, img.naturalHeight]"
        )
        assert natural == [480, 320]
        await expect(room(bob, "alice").get_by_test_id("room-preview")).to_have_text(
            "The view from the hut"
        )

        # Click: the full-size image in a viewer, which closes again.
        await received.get_by_test_id("attachment-image").click()
        viewer = bob.get_by_test_id("lightbox")
        await expect(viewer).to_be_visible()
        await expect(viewer).to_contain_text("sunset.png")
        await expect(viewer.get_by_test_id("lightbox-download")).to_have_attribute(
            "download", "sunset.png"
        )
        big = await viewer.locator("img").element_handle()
        await bob.wait_for_function("img => img.complete && img.naturalWidth === 480", arg=big)
        await screenshot(bob, "media-03-lightbox")
        await viewer.get_by_test_id("lightbox-close").click()
        await expect(viewer).to_have_count(0)

        # A PDF dropped onto the conversation; the PUT is held to show the item on its way.
        held: list[Route] = []

        async def hold(route: Route) -> None:
            if route.request.method == "PUT":
                held.append(route)
            else:
                await route.continue_()

        await alice.route("**/appliance-media/**", hold)
        await drop_file(alice, "Trip budget.pdf", "application/pdf", PDF)
        pending = alice.get_by_test_id("upload")
        await expect(pending).to_be_visible()
        await expect(pending).to_have_attribute("data-upload-state", "uploading")
        await expect(pending.get_by_test_id("upload-status")).to_contain_text("Uploading")
        await expect(pending.get_by_test_id("upload-progress")).to_be_visible()
        await alice.mouse.move(0, 0)
        await screenshot(alice, "media-01-uploading")
        async with asyncio.timeout(10):
            while not held:  # the route sees the PUT a moment after the item shows it
                await asyncio.sleep(0.02)
        assert len(held) == 1
        assert held[0].request.headers["content-type"] == "application/pdf"
        await held[0].continue_()
        await alice.unroute("**/appliance-media/**")
        await expect(with_type(alice, "application/pdf")).to_have_attribute("data-state", "sent")

        # Bob gets a file card (icon, name, type and size) that downloads the file.
        card = with_type(bob, "application/pdf").get_by_test_id("attachment-file")
        await expect(card).to_be_visible()
        await expect(card.get_by_test_id("attachment-name")).to_have_text("Trip budget.pdf")
        await expect(card).to_contain_text("PDF · 1.3 KB")
        await expect(card).to_have_attribute("aria-label", "Download Trip budget.pdf, 1.3 KB")
        async with bob.expect_download() as download_info:
            await card.click()
        download = await download_info.value
        assert download.suggested_filename == "Trip budget.pdf"
        saved = await download.path()
        assert Path(saved).read_bytes() == PDF
        await expect(room(bob, "alice").get_by_test_id("room-preview")).to_have_text(
            "Trip budget.pdf"
        )

        # Audio plays inline with native controls.
        await attach(alice, "birdsong.wav", "audio/wav", wav())
        player = with_type(bob, "audio/wav").get_by_test_id("attachment-audio")
        await expect(player).to_be_visible()
        await expect(player).to_have_attribute("controls", "")
        handle = await player.element_handle()
        await bob.wait_for_function("a => a.readyState >= 1 && a.duration > 0.9", arg=handle)

        # A type the appliance refuses: the reason on the item, no retry, discard removes it.
        await attach(alice, "page.html", "text/html", b"<!doctype html><p>hi</p>")
        refused = alice.get_by_test_id("upload")
        await expect(refused).to_have_attribute("data-upload-state", "failed")
        await expect(refused).to_have_attribute("data-error-code", "media_type_not_allowed")
        await expect(refused.get_by_test_id("message-failed")).to_contain_text(
            "Files of this type can't be shared here."
        )
        await expect(refused.get_by_test_id("message-retry")).to_be_hidden()
        await alice.mouse.move(0, 0)
        await screenshot(alice, "media-04-refused-type")
        await refused.get_by_test_id("message-discard").click()
        await expect(refused).to_have_count(0)
        await expect(bob.get_by_test_id("conversation").get_by_test_id("message")).to_have_count(3)

        await bob.mouse.move(0, 0)
        await screenshot(bob, "media-02-received")

        # On a phone: the thumbnail fits and nothing overflows.
        phone = await ui.sign_in("bob", viewport=MOBILE)
        await room(phone, "alice").click()
        await image_loaded(phone, with_type(phone, "image/png"))
        await phone.get_by_test_id("message-list").evaluate("el => el.scrollTo(0, 0)")
        assert await phone.evaluate(
            "() => document.documentElement.scrollWidth <= window.innerWidth"
        )
        await screenshot(phone, "media-05-mobile")
