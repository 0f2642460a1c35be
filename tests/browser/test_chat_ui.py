"""The chat screens in a real Chromium: the conversations list, direct and group conversations,
live delivery with unread badges and read receipts, typing, edits and deletes, history paging,
catch-up after a dropped connection, and ack errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.browser.conftest import MOBILE, UI, ServerFactory, screenshot
from tests.support import RunningServer

pytestmark = pytest.mark.browser

DAY = 24 * 60 * 60
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"


def person(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="person"][data-username="{name}"]')


def room(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="room"][data-room-name="{name}"]')


def conversation(page: Page) -> Locator:
    return page.get_by_test_id("conversation")


def messages(page: Page) -> Locator:
    return conversation(page).get_by_test_id("message")


def message(page: Page, text: str) -> Locator:
    """The message whose text is exactly `text`."""
    return messages(page).filter(
        has=page.get_by_test_id("message-text").get_by_text(text, exact=True)
    )


async def send(page: Page, text: str) -> None:
    composer = conversation(page).get_by_test_id("composer")
    await composer.fill(text)
    await composer.press("Enter")
    await expect(composer).to_have_value("")


async def expect_sent(page: Page, text: str) -> None:
    await expect(message(page, text)).to_have_attribute("data-state", "sent")


async def seed_direct(
    server: RunningServer,
    a: int,
    b: int,
    count: int,
    at: Callable[[int], float] | None = None,
) -> int:
    """A direct room between users a and b with `count` messages "Message 1"... (every third
    from a, the others from b), the i-th sent at `at(i)` if given; returns the room id."""
    chat = server.app.container.chat
    view = await chat.open_direct(a, b)
    real_clock = chat._clock
    try:
        for i in range(count):
            if at is not None:
                when = at(i)

                def frozen(when: float = when) -> float:
                    return when

                chat._clock = frozen
            sender = a if i % 3 == 0 else b
            await chat.send(sender, view.room.id, f"Message {i + 1}", f"seed-{i}", sid=None)
    finally:
        chat._clock = real_clock
    return int(view.room.id)


async def test_direct_message_is_live_with_unread_badge_seen_and_typing(
    server: RunningServer, ui: UI
) -> None:
    await server.add_user("alice")
    await server.add_user("bob")
    alice = await ui.sign_in("alice")
    bob = await ui.sign_in("bob")

    # Nobody has talked yet.
    await expect(bob.get_by_test_id("rooms-empty")).to_contain_text("No conversations yet")
    await expect(bob.get_by_test_id("empty-state")).to_be_visible()
    await screenshot(bob, "chat-01-empty-desktop")

    # Alice opens bob from People: the direct room is created, empty.
    await person(alice, "bob").click()
    await expect(conversation(alice)).to_have_attribute("data-username", "bob")
    await expect(alice.get_by_test_id("conversation-empty")).to_contain_text(
        "This is the start of your conversation with bob"
    )
    await expect(alice.get_by_test_id("composer")).to_be_focused()
    await expect(room(alice, "bob")).to_have_attribute("aria-current", "true")
    # ...and it shows up in bob's list at once (room:joined), with nothing unread.
    alice_row = room(bob, "alice")
    await expect(alice_row).to_have_attribute("data-unread", "0")
    await expect(alice_row.get_by_test_id("room-preview")).to_have_text("No messages yet")
    await screenshot(alice, "chat-02-empty-conversation")

    await send(alice, "Hello Bob — ça va ?")
    await expect_sent(alice, "Hello Bob — ça va ?")
    await expect(message(alice, "Hello Bob — ça va ?")).to_have_attribute("data-own", "true")

    # Bob sees it live, unread.
    await expect(alice_row.get_by_test_id("room-unread")).to_have_text("1")
    await expect(alice_row.get_by_test_id("room-preview")).to_have_text("Hello Bob — ça va ?")
    await expect(bob).to_have_title("(1) Appliance")
    await send(alice, "Are you around?\nNo rush.")
    await expect(alice_row.get_by_test_id("room-unread")).to_have_text("2")
    await expect(alice_row.get_by_test_id("room-preview")).to_have_text("Are you around? No rush.")
    await expect(alice.get_by_test_id("message-seen")).to_have_count(0)
    await screenshot(bob, "chat-03-unread-badge")

    # Bob opens it: read, the badge goes, and alice sees "Seen" under her last message.
    await alice_row.click()
    await expect(message(bob, "Hello Bob — ça va ?")).to_have_attribute("data-own", "false")
    await expect(message(bob, "Are you around?\nNo rush.")).to_be_visible()
    await expect(alice_row).to_have_attribute("data-unread", "0")
    await expect(alice_row.get_by_test_id("room-unread")).to_be_hidden()
    await expect(bob).to_have_title("Appliance")
    seen = alice.get_by_test_id("message-seen")
    await expect(seen).to_have_count(1)
    await expect(seen).to_have_text("Seen")
    await expect(
        message(alice, "Are you around?\nNo rush.").get_by_test_id("message-seen")
    ).to_be_visible()

    # Alice types: bob sees it; she clears the composer: it goes.
    composer = alice.get_by_test_id("composer")
    await composer.press_sequentially("Shall we", delay=20)
    typing = bob.get_by_test_id("typing-indicator")
    await expect(typing).to_be_visible()
    await expect(typing).to_have_text("alice is typing…")
    await screenshot(bob, "chat-04-typing")
    await composer.fill("")
    await expect(typing).to_be_hidden()

    # Sending ends typing too; bob replies (Shift+Enter makes a new line).
    await composer.press_sequentially("Lunch?", delay=20)
    await expect(typing).to_be_visible()
    await composer.press("Enter")
    await expect(typing).to_be_hidden()
    bob_composer = bob.get_by_test_id("composer")
    await bob_composer.fill("Sure!")
    await bob_composer.press("Shift+Enter")
    await bob_composer.press_sequentially("Noon?")
    await bob_composer.press("Enter")
    reply = message(alice, "Sure!\nNoon?")
    await expect(reply).to_have_attribute("data-own", "false")
    # Alice is looking: she reads it at once, so nothing is unread for her.
    await expect(room(alice, "bob")).to_have_attribute("data-unread", "0")
    await expect(room(bob, "alice").get_by_test_id("room-preview")).to_have_text("You: Sure! Noon?")
    await expect(room(alice, "bob").get_by_test_id("room-preview")).to_have_text("Sure! Noon?")
    await expect(alice.get_by_test_id("day-separator")).to_have_text(["Today"])
    await alice.mouse.move(0, 0)
    await screenshot(alice, "chat-05-desktop-conversation")


async def test_edit_and_delete_are_live(server: RunningServer, ui: UI) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    await server.app.container.chat.open_direct(alice_id, bob_id)
    alice = await ui.sign_in("alice")
    bob = await ui.sign_in("bob")
    await room(alice, "bob").click()
    await room(bob, "alice").click()

    await send(alice, "Lunch at 12?")
    await send(alice, "At the usual place")
    await expect(message(bob, "Lunch at 12?")).to_be_visible()
    await expect(message(bob, "At the usual place")).to_be_visible()
    # Only my own messages can be changed.
    await expect(message(bob, "Lunch at 12?").get_by_test_id("message-edit")).to_have_count(0)

    # Edit from the hover menu: the composer turns into an editor; Enter saves.
    first = message(alice, "Lunch at 12?")
    await first.hover()
    await expect(first.get_by_test_id("message-edit")).to_be_visible()
    await screenshot(alice, "chat-06-hover-actions")
    await first.get_by_test_id("message-edit").click()
    composer = alice.get_by_test_id("composer")
    await expect(alice.get_by_test_id("edit-banner")).to_be_visible()
    await expect(composer).to_have_value("Lunch at 12?")
    await expect(composer).to_be_focused()
    await screenshot(alice, "chat-06-editing")
    await composer.fill("Lunch at 1?")
    await composer.press("Enter")
    await expect(alice.get_by_test_id("edit-banner")).to_be_hidden()
    await expect(composer).to_have_value("")
    edited = message(bob, "Lunch at 1?")
    await expect(edited.get_by_test_id("message-edited")).to_have_text("edited")
    await expect(message(bob, "Lunch at 12?")).to_have_count(0)
    await expect(message(alice, "Lunch at 1?").get_by_test_id("message-edited")).to_be_visible()

    # The length limit shows when near, and blocks sending over it.
    counter = alice.get_by_test_id("composer-counter")
    send_button = alice.get_by_test_id("send")
    await composer.fill("x" * 3500)
    await expect(counter).to_be_hidden()
    await composer.fill("x" * 3999)
    await expect(counter).to_have_text("1 character left")
    await expect(send_button).to_be_enabled()
    await composer.fill("x" * 4002)
    await expect(counter).to_have_text("2 characters over the limit of 4,000")
    await expect(send_button).to_be_disabled()
    await composer.press("Enter")
    await expect(composer).to_have_value("x" * 4002)  # not sent
    await composer.fill("")
    await expect(counter).to_be_hidden()

    # Escape cancels an edit and gives the draft back.
    await composer.fill("a draft")
    second = message(alice, "At the usual place")
    await second.hover()
    await second.get_by_test_id("message-edit").click()
    await expect(composer).to_have_value("At the usual place")
    await composer.press("Escape")
    await expect(composer).to_have_value("a draft")
    await composer.fill("")

    # Delete, after confirming; bob sees the marker, and so does his list preview.
    await second.hover()
    await second.get_by_test_id("message-delete").click()
    dialog = alice.get_by_test_id("confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Delete message?")
    await screenshot(alice, "chat-06-delete-confirm")
    await dialog.get_by_test_id("confirm-ok").click()
    await expect(dialog).to_have_count(0)
    deleted = bob.get_by_test_id("message-deleted")
    await expect(deleted).to_have_count(1)
    await expect(deleted).to_have_text("This message was deleted")
    await expect(message(bob, "At the usual place")).to_have_count(0)
    await expect(alice.get_by_test_id("message-deleted")).to_have_count(1)
    await expect(room(bob, "alice").get_by_test_id("room-preview")).to_have_text("Message deleted")
    await expect(messages(bob)).to_have_count(2)
    await bob.mouse.move(0, 0)
    await screenshot(bob, "chat-07-edited-and-deleted")


async def test_group_of_three(server: RunningServer, ui: UI) -> None:
    alice_id = await server.add_user("alice", admin=True)
    await server.add_user("bob")
    carol_id = await server.add_user("carol")
    await server.add_user("dave")
    alice = await ui.sign_in("alice")
    bob = await ui.sign_in("bob")
    carol = await ui.sign_in("carol")

    await alice.get_by_test_id("new-group").click()
    dialog = alice.get_by_test_id("new-group-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Group name")).to_be_focused()
    create = dialog.get_by_test_id("create-group")
    await expect(create).to_be_disabled()
    await dialog.get_by_label("Group name").fill("Weekend plans")
    await expect(create).to_be_disabled()  # nobody picked yet
    await dialog.locator('[data-testid="group-member"][data-username="bob"]').check()
    await dialog.locator('[data-testid="group-member"][data-username="carol"]').check()
    await expect(dialog.get_by_test_id("group-member-count")).to_have_text("2 selected")
    await screenshot(alice, "chat-08-new-group")
    await create.click()
    await expect(dialog).to_have_count(0)

    view = conversation(alice)
    await expect(view).to_have_attribute("data-kind", "group")
    await expect(view.get_by_test_id("conversation-name")).to_have_text("Weekend plans")
    await expect(view.get_by_test_id("conversation-status")).to_have_text("3 members · 3 online")
    await expect(room(alice, "Weekend plans")).to_have_attribute("aria-current", "true")

    # Both members see it appear live.
    for page in (bob, carol):
        await expect(room(page, "Weekend plans")).to_be_visible()
        await expect(room(page, "Weekend plans")).to_have_attribute("data-kind", "group")

    await send(alice, "Hiking on Saturday?")
    await expect(room(bob, "Weekend plans").get_by_test_id("room-preview")).to_have_text(
        "alice: Hiking on Saturday?"
    )
    await expect(room(carol, "Weekend plans").get_by_test_id("room-unread")).to_have_text("1")
    await room(bob, "Weekend plans").click()
    await room(carol, "Weekend plans").click()
    # Sender names in a group, on others' messages only.
    hiking = message(bob, "Hiking on Saturday?")
    await expect(hiking.get_by_test_id("message-sender")).to_have_text("alice")
    await send(bob, "I'm in")
    await send(carol, "Me too, if it doesn't rain")
    await send(carol, "I'll bring snacks")
    await expect(message(alice, "I'm in").get_by_test_id("message-sender")).to_have_text("bob")
    await expect(
        message(alice, "Me too, if it doesn't rain").get_by_test_id("message-sender")
    ).to_have_text("carol")
    # A run of messages from one sender names them once.
    await expect(
        message(alice, "I'll bring snacks").get_by_test_id("message-sender")
    ).to_have_count(0)
    await expect(
        message(alice, "Hiking on Saturday?").get_by_test_id("message-sender")
    ).to_have_count(0)
    # Typing in a group names the typer; no "Seen" in groups.
    await bob.get_by_test_id("composer").press_sequentially("See", delay=20)
    await expect(alice.get_by_test_id("typing-indicator")).to_have_text("bob is typing…")
    await expect(alice.get_by_test_id("message-seen")).to_have_count(0)
    await alice.mouse.move(0, 0)
    await screenshot(alice, "chat-09-group")

    # Dave is not in it.
    dave = await ui.sign_in("dave")
    await expect(dave.get_by_test_id("rooms-empty")).to_be_visible()

    # Alice removes carol: carol's open conversation closes with a notice (room:left), and
    # the others see two members.
    room_id = int(await view.get_attribute("data-room-id") or 0)
    await server.app.container.chat.remove_member(alice_id, room_id, carol_id)
    await expect(carol.get_by_test_id("toast")).to_have_text(
        "“Weekend plans” is no longer available to you."
    )
    await expect(conversation(carol)).to_have_count(0)
    await expect(room(carol, "Weekend plans")).to_have_count(0)
    await expect(carol.get_by_test_id("empty-state")).to_be_visible()
    await expect(view.get_by_test_id("conversation-status")).to_have_text("2 members · 2 online")


async def test_history_pages_and_day_separators(server: RunningServer, ui: UI) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    # 120 messages over three days (the pages run in UTC): 1-40 two days ago, 41-80 yesterday,
    # 81-120 today.
    now = time.time()
    midnight = now - now % DAY
    today = max(midnight, now - 600)

    def at(i: int) -> float:
        if i < 40:
            return midnight - 2 * DAY + 9 * 3600 + i * 60
        if i < 80:
            return midnight - DAY + 9 * 3600 + (i - 40) * 60
        return today + (i - 80)

    room_id = await seed_direct(server, alice_id, bob_id, 120, at)

    alice = await ui.sign_in("alice")
    await expect(room(alice, "bob").get_by_test_id("room-preview")).to_have_text("Message 120")
    await expect(room(alice, "bob").get_by_test_id("room-unread")).to_have_text("80")
    await room(alice, "bob").click()

    # The newest page, 71-120, at the bottom, and read.
    await expect(messages(alice)).to_have_count(50)
    await expect(messages(alice).first).to_contain_text("Message 71")
    await expect(message(alice, "Message 120")).to_be_in_viewport()
    await expect(room(alice, "bob")).to_have_attribute("data-unread", "0")
    await expect(alice.get_by_test_id("day-separator")).to_have_text(["Yesterday", "Today"])

    # "Load earlier" adds the page before it; the screen stays where it was.
    box_before = await message(alice, "Message 120").bounding_box()
    await alice.get_by_test_id("load-earlier").dispatch_event("click")
    await expect(messages(alice)).to_have_count(100)
    await expect(messages(alice).first).to_contain_text("Message 21")
    box_after = await message(alice, "Message 120").bounding_box()
    assert box_before is not None and box_after is not None
    assert abs(box_after["y"] - box_before["y"]) < 2, (box_before, box_after)

    # Scrolled to the top, the rest loads by itself, and what was at the top stays in view.
    await alice.get_by_test_id("message-list").evaluate("el => el.scrollTo(0, 0)")
    await expect(messages(alice)).to_have_count(120)
    await expect(message(alice, "Message 21")).to_be_in_viewport()
    await expect(message(alice, "Message 1")).not_to_be_in_viewport()
    await expect(alice.get_by_test_id("load-earlier")).to_have_count(0)
    await expect(alice.get_by_test_id("conversation-start")).to_be_attached()
    separators = alice.get_by_test_id("day-separator")
    await expect(separators).to_have_count(3)
    await expect(separators.nth(1)).to_have_text("Yesterday")
    await expect(separators.nth(2)).to_have_text("Today")
    # Each message once, in order.
    texts = await messages(alice).get_by_test_id("message-text").all_inner_texts()
    assert texts == [f"Message {i}" for i in range(1, 121)]
    await alice.get_by_test_id("message-list").evaluate("el => el.scrollTo(0, 0)")
    await expect(alice.get_by_test_id("conversation-start")).to_be_in_viewport()

    # A new message while reading old ones: counted on the jump button, not scrolled to.
    await server.app.container.chat.send(bob_id, room_id, "Are you there?", "live-1", sid=None)
    jump = alice.get_by_test_id("jump-latest")
    await expect(jump).to_have_text("1 new message")
    await expect(alice.get_by_test_id("conversation-start")).to_be_in_viewport()
    await expect(room(alice, "bob").get_by_test_id("room-unread")).to_have_text("1")
    await screenshot(alice, "chat-10-history-start")
    await jump.click()
    await expect(message(alice, "Are you there?")).to_be_in_viewport()
    await expect(jump).to_be_hidden()
    await expect(room(alice, "bob")).to_have_attribute("data-unread", "0")


async def test_offline_catch_up_and_resend(server: RunningServer, ui: UI) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    room_id = await seed_direct(server, alice_id, bob_id, 3)
    alice = await ui.sign_in("alice")
    bob = await ui.sign_in("bob")
    await room(alice, "bob").click()
    await room(bob, "alice").click()
    await expect(messages(bob)).to_have_count(3)

    # Bob's network drops; alice sends two messages meanwhile.
    await bob.context.set_offline(True)
    await expect(bob.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "reconnecting"
    )
    await send(alice, "While you were away 1")
    await send(alice, "While you were away 2")
    await expect_sent(alice, "While you were away 2")
    await expect(messages(bob)).to_have_count(3)

    # Back online: chat:sync brings both, each exactly once.
    await bob.context.set_offline(False)
    await expect(bob.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "connected"
    )
    await expect(message(bob, "While you were away 1")).to_have_count(1)
    await expect(message(bob, "While you were away 2")).to_have_count(1)

    # Alice's network drops while she sends: it waits, then goes out once, same client_msg_id.
    await alice.context.set_offline(True)
    await expect(alice.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "reconnecting"
    )
    await send(alice, "Sent while offline")
    pending = message(alice, "Sent while offline")
    await expect(pending).to_have_attribute("data-state", "queued")
    await expect(pending.get_by_test_id("message-pending")).to_be_visible()
    client_msg_id = await pending.get_attribute("data-client-msg-id")
    assert client_msg_id is not None and client_msg_id.startswith("web:")
    await screenshot(alice, "chat-11-pending-offline")
    await alice.context.set_offline(False)
    await expect(pending).to_have_attribute("data-state", "sent")
    await expect(pending).to_have_attribute("data-client-msg-id", client_msg_id)

    # A live message after all that: by then both catch-ups are done.
    await send(alice, "All good")
    await expect(message(bob, "All good")).to_have_count(1)
    texts = await messages(bob).get_by_test_id("message-text").all_inner_texts()
    assert texts == [
        "Message 1",
        "Message 2",
        "Message 3",
        "While you were away 1",
        "While you were away 2",
        "Sent while offline",
        "All good",
    ]
    # The server has each once too.
    stored, _ = await server.app.container.chat.history(bob_id, room_id, None, 100)
    assert [m["text"] for m in reversed(stored)] == texts


async def test_mobile_conversation(server: RunningServer, ui: UI) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    await server.add_user("carol")
    await seed_direct(server, alice_id, bob_id, 8)
    await server.user_socket("bob")

    page = await ui.sign_in("alice", viewport=MOBILE)
    await expect(page.get_by_test_id("main")).to_be_hidden()
    await expect(room(page, "bob").get_by_test_id("room-unread")).to_have_text("5")
    await screenshot(page, "chat-12-mobile-list")

    await room(page, "bob").click()
    await expect(conversation(page)).to_be_visible()
    await expect(page.get_by_test_id("sidebar")).to_be_hidden()
    await expect(messages(page)).to_have_count(8)
    await expect(message(page, "Message 8")).to_be_in_viewport()
    await send(page, "On my phone, this line is long enough to wrap onto a second line.")
    await expect_sent(page, "On my phone, this line is long enough to wrap onto a second line.")
    assert await page.evaluate(NO_OVERFLOW)
    await screenshot(page, "chat-13-mobile-conversation")

    await page.get_by_test_id("back-to-people").click()
    await expect(page.get_by_test_id("sidebar")).to_be_visible()
    await expect(room(page, "bob")).to_be_focused()
    await expect(room(page, "bob")).to_have_attribute("data-unread", "0")

    # From People: carol's room is created and opened; back returns to her row.
    await person(page, "carol").click()
    await expect(conversation(page)).to_have_attribute("data-username", "carol")
    await expect(page.get_by_test_id("conversation-empty")).to_be_visible()
    await screenshot(page, "chat-14-mobile-empty-conversation")
    await page.get_by_test_id("back-to-people").click()
    await expect(person(page, "carol")).to_be_focused()
    assert await page.evaluate(NO_OVERFLOW)


async def test_ack_errors_are_shown(make_server: ServerFactory, browser: Browser) -> None:
    limits = {"chat_rate": 0.1, "chat_burst": 4}
    async with make_server(rate_limits=limits) as server, UI(browser, server) as ui:
        alice_id = await server.add_user("alice")
        bob_id = await server.add_user("bob")
        await server.app.container.chat.open_direct(alice_id, bob_id)
        alice = await ui.sign_in("alice")
        await room(alice, "bob").click()
        await expect(alice.get_by_test_id("conversation-empty")).to_be_visible()

        # invalid_request: the server's reason, on the message, which can be discarded.
        await send(alice, "bell \u0007 in it")
        failed = messages(alice).filter(has_text="bell")
        await expect(failed).to_have_attribute("data-state", "failed")
        await expect(failed.get_by_test_id("message-failed")).to_contain_text(
            "Text contains control characters"
        )
        await failed.get_by_test_id("message-discard").click()
        await expect(failed).to_have_count(0)

        # rate_limited: a toast with the wait, and the message can be retried later.
        for i in range(4):
            await send(alice, f"Quick {i}")
        toast = alice.get_by_test_id("toast")
        await expect(toast).to_contain_text("Slow down — try again in")
        await expect(toast).to_have_text(re.compile(r"^Slow down — try again in \d+s$"))
        limited = message(alice, "Quick 3")
        await expect(limited).to_have_attribute("data-state", "failed")
        await expect(limited.get_by_test_id("message-failed")).to_contain_text(
            "Not sent: too many messages at once."
        )
        await expect(limited.get_by_test_id("message-retry")).to_be_visible()
        await expect(room(alice, "bob").get_by_test_id("room-preview")).to_have_text(
            "Not sent: Quick 3"
        )
        await alice.mouse.move(0, 0)
        await screenshot(alice, "chat-15-rate-limited")
