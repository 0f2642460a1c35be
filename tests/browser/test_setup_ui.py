"""The set-up wizard in a real Chromium: until set-up is done only the wizard shows; every step
clicked through (screenshots at desktop and mobile width), server-side errors shown next to
their field, the address to share with its QR code, then signing in as the new admin."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from appliance.config import load
from tests.browser.conftest import DESKTOP, MOBILE, UI, ServerFactory, screenshot, submit_login
from tests.support import PASSWORD
from tests.test_setup_api import SHARE, TOKEN, RecordingRestarter

pytestmark = pytest.mark.browser

NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def shoot(page: Page, name: str) -> None:
    """A screenshot at desktop width and one at mobile width, with no sideways scrolling."""
    await screenshot(page, f"{name}-desktop")
    await page.set_viewport_size(MOBILE)
    assert await page.evaluate(NO_OVERFLOW), name
    await screenshot(page, f"{name}-mobile")
    await page.set_viewport_size(DESKTOP)


async def step(page: Page, name: str) -> None:
    await expect(page.get_by_test_id("setup-step")).to_have_attribute("data-step", name)


def field_error(page: Page, field: str) -> Locator:
    return page.locator(f'[data-testid="field-error"][data-field="{field}"]')


async def next_step(page: Page, expected: str) -> None:
    await page.get_by_test_id("setup-next").click()
    await step(page, expected)


@pytest.mark.timeout(120)
async def test_wizard_clicked_through_then_sign_in(
    make_server: ServerFactory, browser: Browser
) -> None:
    async with (
        make_server(setup={"token": TOKEN}) as server,
        UI(browser, server) as ui,
    ):
        server.app.container.setup.restarter = RecordingRestarter()
        ui.problems.allow("/api/setup/token", 401)
        ui.problems.allow("/api/setup/validate/admin", 400)
        ui.problems.allow("/api/setup/validate/turn", 400)

        # On a phone, without the token in the link: the token screen, nothing else.
        phone = await ui.page(MOBILE)
        await phone.goto(server.url)
        await expect(phone.get_by_test_id("setup-page")).to_be_visible()
        await step(phone, "token")
        await expect(phone.get_by_test_id("login-page")).to_have_count(0)
        await expect(phone.get_by_test_id("setup-token")).to_have_value("")
        assert await phone.evaluate(NO_OVERFLOW)
        await screenshot(phone, "setup-01-token-mobile")

        # The link the installer prints carries the token in the fragment: pre-filled, and
        # taken out of the address bar at once.
        page = await ui.page(DESKTOP)
        await page.goto(f"{server.url}/#setup={TOKEN}")
        await expect(page.get_by_test_id("setup-token")).to_have_value(TOKEN)
        assert "#" not in page.url
        await screenshot(page, "setup-01-token-desktop")

        # A wrong token is refused next to the field.
        await page.get_by_test_id("setup-token").fill("not-the-token-at-all")
        await page.get_by_test_id("setup-next").click()
        wrong = field_error(page, "token")
        await expect(wrong).to_be_visible()
        await expect(wrong).to_contain_text("not right")
        await expect(page.get_by_label("Set-up token")).to_have_attribute("aria-invalid", "true")
        await screenshot(page, "setup-01-token-wrong")
        await page.get_by_test_id("setup-token").fill(TOKEN)
        await next_step(page, "organisation")

        # 1. Organisation.
        await expect(page.get_by_test_id("setup-progress")).to_have_text("Step 1 of 7")
        await page.get_by_label("Organisation name").fill("Riverside Clinic")
        await shoot(page, "setup-02-organisation")
        await next_step(page, "admin")

        # 2. The first admin: a short password is refused by the server, next to its field.
        await page.get_by_label("Username").fill("boss")
        await page.get_by_label("Password", exact=True).fill("short")
        await page.get_by_label("Password again").fill("short")
        await page.get_by_test_id("setup-next").click()
        short = field_error(page, "admin.password")
        await expect(short).to_have_text("Must be at least 8 characters.")
        await step(page, "admin")
        await expect(page.get_by_label("Password", exact=True)).to_be_focused()
        await shoot(page, "setup-03-admin-error")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_label("Password again").fill(PASSWORD + "x")
        await page.get_by_test_id("setup-next").click()
        await expect(field_error(page, "admin.confirm")).to_contain_text("differ")
        await expect(short).to_be_hidden()
        await page.get_by_label("Password again").fill(PASSWORD)
        await next_step(page, "reach")

        # 3. Reaching the box: detected names, an extra name to share, the STUN verdict.
        detected = page.get_by_test_id("detected-names")
        await expect(detected).to_contain_text("localhost")
        await expect(page.get_by_test_id("stun-report")).to_contain_text(
            "No STUN servers are configured"
        )
        await page.get_by_label("Extra names (optional)").fill(SHARE)
        await page.get_by_label("Address to share with your team").select_option(SHARE)
        await shoot(page, "setup-04-reach")
        await next_step(page, "tls")

        # 4. TLS: the appliance's own CA (the default); the upload fields show on demand.
        await expect(page.get_by_test_id("choice-internal")).to_be_checked()
        await expect(page.get_by_test_id("tls-cert_pem")).to_be_hidden()
        await page.get_by_test_id("choice-upload").check()
        await expect(page.get_by_test_id("tls-cert_pem")).to_be_visible()
        await screenshot(page, "setup-05-tls-upload")
        await page.get_by_test_id("choice-internal").check()
        await shoot(page, "setup-05-tls")
        await next_step(page, "turn")

        # 5. TURN ports: a clash with the web port is refused next to the field; the firewall
        # table follows the values.
        firewall = page.get_by_test_id("firewall")
        await expect(firewall).to_contain_text("49160-49200")
        await page.get_by_label("TURN port", exact=True).fill("8080")
        await expect(firewall).to_contain_text("8080")
        await page.get_by_test_id("setup-next").click()
        clash = field_error(page, "turn.port")
        await expect(clash).to_contain_text("Already used by the web service")
        await shoot(page, "setup-06-turn-error")
        await page.get_by_label("TURN port", exact=True).fill("3478")
        await page.get_by_label("Last relay port").fill("49250")
        await expect(firewall).to_contain_text("49160-49250")
        await shoot(page, "setup-06-turn")
        await next_step(page, "storage")

        # 6. Storage: on the box (the external form only shows when chosen).
        await expect(page.get_by_test_id("choice-managed")).to_be_checked()
        await page.get_by_test_id("choice-external").check()
        await expect(page.get_by_label("Endpoint URL")).to_be_visible()
        await screenshot(page, "setup-07-storage-external")
        await page.get_by_test_id("choice-managed").check()
        await expect(page.get_by_label("Endpoint URL")).to_be_hidden()
        await shoot(page, "setup-07-storage")
        await next_step(page, "recording")

        # 7. Recording.
        await page.get_by_test_id("recording-enabled").check()
        await page.get_by_label("Keep recordings for (days)").fill("14")
        await shoot(page, "setup-08-recording")
        await next_step(page, "summary")

        # Summary, with a way back to any step.
        summary = page.get_by_test_id("setup-summary")
        await expect(summary).to_contain_text("Riverside Clinic")
        await expect(summary).to_contain_text("boss")
        await expect(summary).to_contain_text(SHARE)
        await expect(summary).to_contain_text("relay 49160-49250")
        await expect(summary).to_contain_text("On, kept 14 days")
        await shoot(page, "setup-09-summary")
        await page.get_by_role("button", name="Change Organisation").click()
        await step(page, "organisation")
        await expect(page.get_by_label("Organisation name")).to_have_value("Riverside Clinic")
        for expected in ("admin", "reach", "tls", "turn", "storage", "recording", "summary"):
            await next_step(page, expected)

        # Finish: the address to share, its QR code and the trust page.
        await page.get_by_test_id("setup-finish").click()
        await step(page, "done")
        await expect(page.get_by_test_id("setup-title")).to_have_text("Your appliance is ready")
        await expect(page.get_by_test_id("share-url")).to_have_value(f"https://{SHARE}:8443/")
        await expect(page.get_by_test_id("trust-link")).to_have_attribute(
            "href", f"http://{SHARE}:8080/trust"
        )
        qr = page.get_by_test_id("share-qr")
        await expect(qr).to_be_visible()
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
        await screenshot(page, "setup-10-done-desktop")
        await page.set_viewport_size(MOBILE)
        assert await page.evaluate(NO_OVERFLOW)
        await screenshot(page, "setup-10-done-mobile")
        await page.set_viewport_size(DESKTOP)

        config = load(server.settings.data_dir).config
        assert config.organisation.name == "Riverside Clinic"
        assert config.turn.max_port == 49250
        assert config.recording.enabled is True
        assert config.setup.token.get_secret_value() == ""

        # The phone still on the token screen finds set-up done when it tries.
        ui.problems.allow("/api/setup/token", 404)
        await phone.get_by_test_id("setup-token").fill(TOKEN)
        await phone.get_by_test_id("setup-next").click()
        await expect(phone.get_by_test_id("setup-title")).to_have_text("Set-up is already finished")

        # Sign in as the new admin; the sign-in page names the organisation.
        await page.get_by_test_id("setup-signin").click()
        await expect(page.get_by_test_id("login-page")).to_be_visible()
        await expect(page.get_by_test_id("login-organisation")).to_have_text(
            "Chat and calls for Riverside Clinic."
        )
        await screenshot(page, "setup-11-login-organisation")
        await submit_login(page, "boss", PASSWORD)
        await expect(page.get_by_test_id("app-shell")).to_be_visible()
        await expect(page.get_by_test_id("current-username")).to_have_text("boss")

        # A fresh visit goes straight to sign-in: the wizard is gone.
        later = await ui.page(MOBILE)
        await later.goto(f"{server.url}/#setup={TOKEN}")
        await expect(later.get_by_test_id("login-page")).to_be_visible()
        await expect(later.get_by_test_id("setup-page")).to_have_count(0)
