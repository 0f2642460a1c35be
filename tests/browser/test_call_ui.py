"""1:1 calls in a real Chromium (fake camera and microphone), relayed by a real coturn on
loopback: ringing on every tab of the callee, answering on one, the media flowing both ways,
mute and camera, hanging up (the camera released), and a declined call.

Network: GET /api/turn says `iceTransportPolicy: "relay"` (calls.force_relay), so Chromium only
uses relay candidates, allocated on the coturn bound to 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.browser.conftest import MOBILE, UI, ServerFactory, screenshot
from tests.support import RunningServer
from tests.turn_support import running_turn, turn_overrides

pytestmark = pytest.mark.browser

# Test hooks, installed before the app's own script: every track getUserMedia hands out and
# every RTCPeerConnection made, to check states and that the camera is released at the end.
HOOKS = r"""
(() => {
  const tracks = [];
  const pcs = [];
  const devices = navigator.mediaDevices;
  if (devices && devices.getUserMedia) {
    const original = devices.getUserMedia.bind(devices);
    devices.getUserMedia = async (constraints) => {
      const stream = await original(constraints);
      tracks.push(...stream.getTracks());
      return stream;
    };
  }
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      pcs.push(this);
    }
  };
  window.__calls = {
    liveTracks: () => tracks.filter((t) => t.readyState === "live").map((t) => t.kind),
    audioEnabled: () =>
      tracks.filter((t) => t.kind === "audio" && t.readyState === "live").map((t) => t.enabled),
    pcStates: () => pcs.map((pc) => pc.connectionState),
    ufrag: () => /a=ice-ufrag:(\S+)/.exec(pcs.at(-1).localDescription?.sdp ?? "")?.[1] ?? null,
    policy: () => pcs.map((pc) => pc.getConfiguration().iceTransportPolicy),
    selectedPair: async () => {
      const pc = pcs.at(-1);
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
      });
      if (!pair) return null;
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      return {
        local: local.candidateType,
        remote: remote.candidateType,
        relayServer: local.url || null,
      };
    },
  };
})();
"""

PLAYING = """v => v.videoWidth > 0 && !v.paused && v.readyState >= 2 && v.currentTime > 0"""


@asynccontextmanager
async def call_world(make_server: ServerFactory, browser: Browser) -> AsyncIterator[UI]:
    turn = turn_overrides(allow_loopback_peers=True)
    async with (
        make_server(calls={"force_relay": True}, turn=turn) as server,
        running_turn(server.settings),
        UI(browser, server) as ui,
    ):
        ui.init_scripts.append(HOOKS)
        yield ui


def room(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="room"][data-room-name="{name}"]')


def call_view(page: Page) -> Locator:
    return page.get_by_test_id("call-view")


async def pair(server: RunningServer) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    await server.app.container.chat.open_direct(alice_id, bob_id)


async def hooks(page: Page, name: str, *args: Any) -> Any:
    return await page.evaluate(f"(args) => window.__calls.{name}(...args)", list(args))


@pytest.mark.timeout(150)
async def test_video_call_rings_every_tab_connects_and_hangs_up(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with call_world(make_server, browser) as ui:
        server = ui.server
        await pair(server)
        alice = await ui.sign_in("alice")
        bob = await ui.sign_in("bob")
        bob_other_tab = await ui.sign_in("bob")
        await room(alice, "bob").click()
        video_button = alice.get_by_test_id("conversation").get_by_test_id("call-video")
        await expect(video_button).to_be_enabled()
        await expect(video_button).to_have_attribute("aria-label", "Video call bob")

        # Alice calls: her camera starts, she sees "Ringing…".
        await video_button.click()
        view = call_view(alice)
        await expect(view).to_be_visible()
        await expect(view).to_have_attribute("data-phase", "outgoing")
        await expect(view.get_by_test_id("call-status")).to_have_text("Ringing…")
        await expect(view.get_by_test_id("call-hangup")).to_have_attribute(
            "aria-label", "Cancel call"
        )
        await expect(view).to_have_attribute("data-local-video", "on")

        # Both of bob's tabs ring.
        for tab in (bob, bob_other_tab):
            banner = tab.get_by_test_id("incoming-call")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("alice")
            await expect(banner).to_contain_text("Incoming video call…")
        await screenshot(bob, "call-01-incoming")
        await screenshot(alice, "call-02-ringing")
        accept = bob.get_by_test_id("incoming-accept")
        await expect(accept).to_have_attribute("aria-label", "Accept video call from alice")

        # Bob answers on one tab: the other stops ringing and shows no call.
        await accept.click()
        await expect(bob_other_tab.get_by_test_id("incoming-call")).to_be_hidden()
        await expect(call_view(bob_other_tab)).to_be_hidden()
        await expect(bob.get_by_test_id("incoming-call")).to_be_hidden()

        # Both connect, through the relay only, and each plays the other's video.
        for page in (alice, bob):
            await expect(call_view(page)).to_have_attribute(
                "data-connection", "connected", timeout=30_000
            )
            await expect(call_view(page)).to_have_attribute("data-phase", "active")
            assert await hooks(page, "pcStates") == ["connected"]
            assert await hooks(page, "policy") == ["relay"]
            remote = call_view(page).get_by_test_id("call-remote-video")
            await expect(remote).to_be_visible()
            await page.wait_for_function(PLAYING, arg=await remote.element_handle())
            # The timer runs.
            await expect(call_view(page).get_by_test_id("call-status")).to_have_text(
                re.compile(r"^0:0\d$")
            )
        pair_alice = await alice.wait_for_function("() => window.__calls.selectedPair()")
        selected = await pair_alice.json_value()
        assert selected["local"] == "relay", selected
        assert selected["relayServer"] is None or "127.0.0.1" in selected["relayServer"]
        assert await call_view(bob_other_tab).is_hidden()
        assert await hooks(bob_other_tab, "liveTracks") == []  # never took the camera

        # Mute: the button says so and the microphone track is disabled; unmute again.
        mic = call_view(alice).get_by_test_id("call-mic")
        await expect(mic).to_have_attribute("aria-label", "Mute microphone")
        await mic.click()
        await expect(mic).to_have_attribute("aria-pressed", "true")
        await expect(mic).to_have_attribute("aria-label", "Unmute microphone")
        assert await hooks(alice, "audioEnabled") == [False]
        await alice.mouse.move(0, 0)
        await screenshot(alice, "call-03-in-call-desktop")
        await mic.click()
        await expect(mic).to_have_attribute("aria-pressed", "false")
        assert await hooks(alice, "audioEnabled") == [True]

        # Camera off releases bob's camera; on takes it again, and alice still gets video.
        camera = call_view(bob).get_by_test_id("call-camera")
        await camera.click()
        await expect(camera).to_have_attribute("aria-pressed", "true")
        await expect(call_view(bob)).to_have_attribute("data-local-video", "off")
        assert await hooks(bob, "liveTracks") == ["audio"]
        await camera.click()
        await expect(camera).to_have_attribute("aria-pressed", "false")
        await expect(call_view(bob)).to_have_attribute("data-local-video", "on")
        assert sorted(await hooks(bob, "liveTracks")) == ["audio", "video"]
        alice_remote = call_view(alice).get_by_test_id("call-remote-video")
        await alice.wait_for_function(PLAYING, arg=await alice_remote.element_handle())

        # Alice's connection to the appliance drops: both see "Reconnecting…"; when it is back
        # her tab resumes the call (call:resume) and, as the caller, restarts ICE.
        ufrag = await hooks(alice, "ufrag")
        await alice.context.set_offline(True)
        for page in (alice, bob):
            await expect(call_view(page).get_by_test_id("call-reconnecting")).to_be_visible()
        await expect(call_view(bob)).to_have_attribute("data-reconnecting", "peer")
        await expect(call_view(alice)).to_have_attribute("data-reconnecting", "self")
        await alice.context.set_offline(False)
        for page in (alice, bob):
            await expect(call_view(page).get_by_test_id("call-reconnecting")).to_be_hidden()
        await alice.wait_for_function("u => window.__calls.ufrag() !== u", arg=ufrag)
        for page in (alice, bob):
            await expect(call_view(page)).to_have_attribute("data-connection", "connected")
        await alice.wait_for_function(PLAYING, arg=await alice_remote.element_handle())

        # The call on a phone.
        await bob.set_viewport_size(MOBILE)
        await expect(call_view(bob)).to_have_attribute("data-remote-video", "on")
        await bob.wait_for_function(
            PLAYING, arg=await call_view(bob).get_by_test_id("call-remote-video").element_handle()
        )
        assert await bob.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
        await screenshot(bob, "call-04-in-call-mobile")
        await bob.set_viewport_size({"width": 1280, "height": 800})

        # Alice hangs up: bob sees that she ended it; both cameras and connections are released.
        await call_view(alice).get_by_test_id("call-hangup").click()
        for page, text in ((alice, "You ended the call with bob."), (bob, "alice ended the call.")):
            ended = call_view(page).get_by_test_id("call-ended")
            await expect(ended).to_be_visible()
            await expect(ended.get_by_test_id("call-ended-title")).to_have_text("Call ended")
            await expect(ended.get_by_test_id("call-ended-text")).to_have_text(text)
            await expect(call_view(page).get_by_test_id("call-controls")).to_be_hidden()
            assert await hooks(page, "liveTracks") == []
            assert await hooks(page, "pcStates") == ["closed"]
        await expect(call_view(bob)).to_have_attribute("data-end-reason", "hangup")
        await screenshot(bob, "call-05-ended")
        await call_view(bob).get_by_test_id("call-close").click()
        await expect(call_view(bob)).to_be_hidden()

        # The appliance logged it: answered, then hung up.
        tokens = await server.login("alice")
        answer = await server.http.get(
            "/api/calls", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        logged = answer.json()["calls"][0]
        assert logged["direction"] == "outgoing"
        assert logged["answered_at"] is not None
        assert logged["end_reason"] == "hangup"


@pytest.mark.timeout(90)
async def test_declined_call(make_server: ServerFactory, browser: Browser) -> None:
    async with call_world(make_server, browser) as ui:
        await pair(ui.server)
        alice = await ui.sign_in("alice")
        bob = await ui.sign_in("bob")

        # From the People list this time: an audio call.
        row = alice.locator('[data-testid="person"][data-username="bob"]')
        await row.hover()
        await expect(alice.get_by_test_id("person-call-audio")).to_be_visible()
        await screenshot(alice, "call-00-person-call-buttons")
        await alice.get_by_test_id("person-call-audio").click()
        view = call_view(alice)
        await expect(view).to_have_attribute("data-media", "audio")
        await expect(view.get_by_test_id("call-status")).to_have_text("Ringing…")
        banner = bob.get_by_test_id("incoming-call")
        await expect(banner).to_contain_text("Incoming audio call…")
        await bob.get_by_test_id("incoming-decline").click()
        await expect(banner).to_be_hidden()
        await expect(call_view(bob)).to_be_hidden()

        await expect(view).to_have_attribute("data-phase", "ended")
        await expect(view.get_by_test_id("call-ended-title")).to_have_text("Declined")
        await expect(view.get_by_test_id("call-ended-text")).to_have_text("bob declined the call.")
        assert await hooks(alice, "liveTracks") == []
        assert await hooks(bob, "liveTracks") == []
        await screenshot(alice, "call-06-declined")
        await view.get_by_test_id("call-close").click()
        await expect(view).to_be_hidden()
