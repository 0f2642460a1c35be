"""Recording a call in a real Chromium (two contexts, fake camera and microphone) with the real
recorder service, a real store and a real coturn on loopback: the record button, the indicator
and the notice on both sides, the recorder's own connection next to the call's, stopping, the
Recordings view (listed, played in the page, downloaded, deleted), and recording turned off.

Network: GET /api/turn says `iceTransportPolicy: "relay"` (calls.force_relay), so Chromium only
uses relay candidates on the coturn bound to 127.0.0.1, for the call and for the recorder leg;
the recorder offers only 127.0.0.1 (recording.host_addresses)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, Route, expect

from tests.browser.conftest import MOBILE, UI, ServerFactory, screenshot
from tests.recorder_support import RunningRecorder, running_recorder
from tests.store_support import running_store, storage_overrides
from tests.support import make_settings
from tests.turn_support import running_turn, turn_overrides

pytestmark = pytest.mark.browser

# Test hooks, installed before the app's own script: every RTCPeerConnection made (the call's
# and the recorder's) with its transceivers' directions.
HOOKS = r"""
(() => {
  const pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      pcs.push(this);
    }
  };
  window.__calls = {
    pcStates: () => pcs.map((pc) => pc.connectionState),
    directions: (index) => pcs[index].getTransceivers().map((t) => t.currentDirection),
    sentBytes: async (index) => {
      const stats = await pcs[index].getStats();
      let bytes = 0;
      stats.forEach((s) => {
        if (s.type === "outbound-rtp") bytes += s.bytesSent;
      });
      return bytes;
    },
  };
})();
"""

PLAYING = """v => v.videoWidth > 0 && !v.paused && v.readyState >= 2 && v.currentTime > 0"""
FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


def call_view(page: Page) -> Locator:
    return page.get_by_test_id("call-view")


def room(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="room"][data-room-name="{name}"]')


async def hooks(page: Page, name: str, *args: Any) -> Any:
    return await page.evaluate(f"(args) => window.__calls.{name}(...args)", list(args))


@asynccontextmanager
async def recording_world(
    make_server: ServerFactory, browser: Browser, tmp_path: Path, *, enabled: bool
) -> AsyncIterator[tuple[UI, RunningRecorder | None]]:
    """The appliance with TURN, and when `enabled` its store and the recorder service too."""
    turn = turn_overrides(allow_loopback_peers=True)
    if not enabled:
        async with (
            make_server(calls={"force_relay": True}, turn=turn) as server,
            running_turn(server.settings),
            UI(browser, server) as ui,
        ):
            ui.init_scripts.append(HOOKS)
            yield ui, None
        return
    storage = storage_overrides()
    recording = {"enabled": True, "host_addresses": ["127.0.0.1"]}
    settings = make_settings(tmp_path / "data", {"storage": storage})
    async with (
        running_store(settings),
        make_server(
            calls={"force_relay": True}, turn=turn, storage=storage, recording=recording
        ) as server,
        running_turn(server.settings),
        running_recorder(server.settings, server.url) as recorder,
        UI(browser, server) as ui,
    ):
        ui.init_scripts.append(HOOKS)
        yield ui, recorder


async def signed_in(ui: UI) -> tuple[Page, Page]:
    """alice and bob, with their direct conversation, each signed in on a page."""
    server = ui.server
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    await server.app.container.chat.open_direct(alice_id, bob_id)
    return await ui.sign_in("alice"), await ui.sign_in("bob")


async def in_a_call(alice: Page, bob: Page) -> None:
    """alice video-calls bob, bob answers; both connected and playing each other's video."""
    await room(alice, "bob").click()
    await alice.get_by_test_id("conversation").get_by_test_id("call-video").click()
    await bob.get_by_test_id("incoming-accept").click()
    for page in (alice, bob):
        await expect(call_view(page)).to_have_attribute(
            "data-connection", "connected", timeout=30_000
        )
        remote = call_view(page).get_by_test_id("call-remote-video")
        await page.wait_for_function(PLAYING, arg=await remote.element_handle())


async def dismiss_toasts(page: Page) -> None:
    """Close the app's toasts (they would cover the view's header in screenshots)."""
    for toast in await page.get_by_test_id("toast").all():
        await toast.get_by_role("button", name="Dismiss").click()


async def open_recordings(page: Page) -> Locator:
    await page.get_by_test_id("nav-recordings").click()
    view = page.get_by_test_id("recordings-view")
    await expect(view).to_be_visible()
    await expect(page.get_by_test_id("nav-recordings")).to_have_attribute("aria-pressed", "true")
    return view


@pytest.mark.timeout(240)
async def test_record_a_call_and_play_it_back(
    make_server: ServerFactory, browser: Browser, tmp_path: Path
) -> None:
    async with recording_world(make_server, browser, tmp_path, enabled=True) as (ui, _):
        alice, bob = await signed_in(ui)
        await in_a_call(alice, bob)

        # Both sides have the record button; nobody records yet.
        for page in (alice, bob):
            button = call_view(page).get_by_test_id("call-record")
            await expect(button).to_be_visible()
            await expect(button).to_be_enabled()
            await expect(button).to_have_attribute("aria-label", "Record this call")
            await expect(call_view(page).get_by_test_id("call-recording-indicator")).to_be_hidden()
        await alice.mouse.move(0, 0)
        await screenshot(alice, "recording-01-record-button")

        # alice records: both see the indicator; bob is told who started it.
        await call_view(alice).get_by_test_id("call-record").click()
        for page in (alice, bob):
            indicator = call_view(page).get_by_test_id("call-recording-indicator")
            await expect(indicator).to_be_visible()
            await expect(indicator).to_contain_text("Recording")
        notice = call_view(bob).get_by_test_id("call-notice")
        await expect(notice).to_be_visible()
        await expect(notice).to_have_text("alice started recording this call")
        await expect(notice).to_have_attribute("data-tone", "recording")
        await expect(call_view(alice).get_by_test_id("call-notice")).to_be_hidden()

        # The recorder got both sides' media: "recording", and the time runs.
        for page in (alice, bob):
            indicator = call_view(page).get_by_test_id("call-recording-indicator")
            await expect(indicator).to_have_attribute("data-state", "recording", timeout=30_000)
            await expect(call_view(page).get_by_test_id("call-record")).to_have_attribute(
                "aria-pressed", "true"
            )
            # The call's connection and the recorder's, both up; the recorder's sends only.
            await page.wait_for_function(
                "() => window.__calls.pcStates().join() === 'connected,connected'"
            )
            assert set(await hooks(page, "directions", 1)) == {"sendonly"}
            assert await hooks(page, "sentBytes", 1) > 0
        await expect(call_view(bob).get_by_test_id("call-recording-indicator")).to_have_attribute(
            "title", "Recording started by alice"
        )
        await screenshot(bob, "recording-02-notice-and-indicator-bob")
        indicator_alice = call_view(alice).get_by_test_id("call-recording-indicator")
        await expect(indicator_alice).to_contain_text(re.compile(r"0:0[3-9]"), timeout=15_000)
        await screenshot(alice, "recording-03-indicator-alice")
        await bob.set_viewport_size({"width": MOBILE["width"], "height": MOBILE["height"]})
        remote_bob = call_view(bob).get_by_test_id("call-remote-video")
        await bob.wait_for_function(PLAYING, arg=await remote_bob.element_handle())
        await bob.evaluate(FRAMES)  # the new layout painted
        await screenshot(bob, "recording-04-indicator-mobile")
        await bob.set_viewport_size({"width": 1280, "height": 800})
        await expect(indicator_alice).to_contain_text(re.compile(r"0:0[5-9]"), timeout=15_000)

        # alice stops: the indicators go, bob is told, the recorder connections close; the
        # call itself goes on.
        await call_view(alice).get_by_test_id("call-record").click()
        for page in (alice, bob):
            await expect(call_view(page).get_by_test_id("call-recording-indicator")).to_be_hidden()
            await expect(call_view(page).get_by_test_id("call-record")).to_have_attribute(
                "aria-pressed", "false"
            )
            await page.wait_for_function(
                "() => window.__calls.pcStates().join() === 'connected,closed'"
            )
        await expect(call_view(bob).get_by_test_id("call-notice")).to_have_text(
            "alice stopped recording. It will be in Recordings shortly."
        )
        await screenshot(bob, "recording-05-stopped-notice")
        await expect(call_view(alice)).to_have_attribute("data-phase", "active")

        # Hanging up: the ended screen says where the recording will be.
        await call_view(alice).get_by_test_id("call-hangup").click()
        await expect(call_view(alice).get_by_test_id("call-ended-recorded")).to_be_visible()
        await screenshot(alice, "recording-06-call-ended")
        await call_view(alice).get_by_test_id("call-close").click()
        await expect(call_view(bob).get_by_test_id("call-ended")).to_be_visible()
        await call_view(bob).get_by_test_id("call-close").click()

        # The Recordings view lists it; `recording:ready` turns it ready (live).
        view = await open_recordings(alice)
        card = view.get_by_test_id("recording")
        await expect(card).to_have_count(1)
        await expect(card).to_contain_text("Call with bob")
        await expect(card).to_contain_text("Recorded by you")
        await expect(card).to_have_attribute("data-status", "ready", timeout=90_000)
        meta = card.get_by_test_id("recording-meta")
        await expect(meta).to_have_text(re.compile(r"^0:0[4-9] · [\d.]+ (KB|MB)$"))
        await screenshot(alice, "recording-07-list")

        view_bob = await open_recordings(bob)
        card_bob = view_bob.get_by_test_id("recording")
        await expect(card_bob).to_contain_text("Call with alice")
        await expect(card_bob).to_contain_text("Recorded by alice")
        await expect(card_bob).to_have_attribute("data-status", "ready")

        # Played in the page: a picture, and time that advances.
        await card.get_by_test_id("recording-play").click()
        video = card.get_by_test_id("recording-video")
        await expect(video).to_be_visible()
        handle = await video.element_handle()
        await alice.wait_for_function(PLAYING, arg=handle, timeout=20_000)
        size = await video.evaluate("v => [v.videoWidth, v.videoHeight]")
        assert size == [1280, 480], size
        first = await video.evaluate("v => v.currentTime")
        await alice.wait_for_function(
            "([v, t]) => v.currentTime > t + 0.5", arg=[handle, first], timeout=10_000
        )
        await alice.mouse.move(0, 0)
        await dismiss_toasts(alice)
        await screenshot(alice, "recording-08-playing")

        # Downloaded (the store names it, from the server's Content-Disposition).
        async with alice.expect_download() as info:
            await card.get_by_test_id("recording-download").click()
        download = await info.value
        assert download.suggested_filename.endswith(".webm"), download.suggested_filename
        saved = tmp_path / "download.webm"
        await download.save_as(saved)
        assert saved.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file

        # Deleted after a confirmation: gone for both.
        await card.get_by_test_id("recording-delete").click()
        dialog = alice.get_by_test_id("confirm-dialog")
        await expect(dialog).to_contain_text("deleted for both of you")
        await screenshot(alice, "recording-09-delete-confirm")
        await dialog.get_by_test_id("confirm-ok").click()
        await expect(card).to_have_count(0)
        await expect(view.get_by_test_id("recordings-empty")).to_be_visible()
        await dismiss_toasts(alice)
        await screenshot(alice, "recording-10-empty")
        await view_bob.get_by_test_id("recordings-refresh").click()
        await expect(card_bob).to_have_count(0)


@pytest.mark.timeout(120)
async def test_recording_turned_off(
    make_server: ServerFactory, browser: Browser, tmp_path: Path
) -> None:
    async with recording_world(make_server, browser, tmp_path, enabled=False) as (ui, _):
        # alice's page has stale site info saying recording is on (as before an admin turned
        # it off): the server's refusal is what she sees.
        async def stale_site(route: Route) -> None:
            response = await route.fetch()
            body = await response.json()
            body["recording_enabled"] = True
            await route.fulfill(response=response, body=json.dumps(body))

        alice, bob = await signed_in(ui)
        await alice.route("**/api/site", stale_site)
        await alice.reload()
        await expect(alice.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        await in_a_call(alice, bob)

        # bob's page knows: no record button at all.
        await expect(call_view(bob).get_by_test_id("call-controls")).to_be_visible()
        await expect(call_view(bob).get_by_test_id("call-record")).to_be_hidden()

        button = call_view(alice).get_by_test_id("call-record")
        await expect(button).to_be_visible()
        await button.click()
        notice = call_view(alice).get_by_test_id("call-notice")
        await expect(notice).to_be_visible()
        await expect(notice).to_have_text("Recording is turned off on this appliance.")
        await expect(notice).to_have_attribute("data-tone", "error")
        await expect(call_view(alice).get_by_test_id("call-recording-indicator")).to_be_hidden()
        await expect(call_view(bob).get_by_test_id("call-recording-indicator")).to_be_hidden()
        await alice.mouse.move(0, 0)
        await screenshot(alice, "recording-11-disabled")
        # Now known: the button goes; no recorder connection was made.
        await expect(button).to_be_hidden()
        assert await hooks(alice, "pcStates") == ["connected"]

        # The Recordings view says recording is off.
        await call_view(alice).get_by_test_id("call-hangup").click()
        await call_view(alice).get_by_test_id("call-close").click()
        view = await open_recordings(bob)
        await expect(view.get_by_test_id("recordings-empty")).to_contain_text(
            "Recording calls is turned off on this appliance."
        )
        await screenshot(bob, "recording-12-empty-disabled")


@pytest.mark.timeout(150)
async def test_recorder_lost_mid_recording(
    make_server: ServerFactory, browser: Browser, tmp_path: Path
) -> None:
    async with recording_world(make_server, browser, tmp_path, enabled=True) as (ui, recorder):
        assert recorder is not None
        alice, bob = await signed_in(ui)
        await in_a_call(alice, bob)
        await call_view(bob).get_by_test_id("call-record").click()  # bob this time
        for page in (alice, bob):
            indicator = call_view(page).get_by_test_id("call-recording-indicator")
            await expect(indicator).to_have_attribute("data-state", "recording", timeout=30_000)
        await expect(call_view(alice).get_by_test_id("call-notice")).to_have_text(
            "bob started recording this call"
        )

        # The recorder dies: both are told, the indicator goes, the recorder connection
        # closes; the call goes on.
        recorder.proc.kill()
        for page in (alice, bob):
            view = call_view(page)
            notice = view.get_by_test_id("call-notice")
            await expect(notice).to_have_text(
                "Recording failed: the recording service stopped. The call goes on."
            )
            await expect(notice).to_have_attribute("data-tone", "error")
            await expect(view.get_by_test_id("call-recording-indicator")).to_be_hidden()
            await expect(view.get_by_test_id("call-record")).to_have_attribute(
                "aria-pressed", "false"
            )
            await page.wait_for_function(
                "() => window.__calls.pcStates().join() === 'connected,closed'"
            )
            await expect(view).to_have_attribute("data-phase", "active")
            remote = view.get_by_test_id("call-remote-video")
            await page.wait_for_function(PLAYING, arg=await remote.element_handle())
        await alice.mouse.move(0, 0)
        await screenshot(alice, "recording-13-failed")
