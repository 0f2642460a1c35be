"""The first-run set-up wizard's HTTP API against a real server: the token (missing, wrong,
throttled, replayed), body checks, each step's field errors, a live S3 round trip against a real
`rclone serve s3`, TLS uploads, finishing (admin, config, token file), 404 afterwards and after a
restart, and two finishes at once."""

from __future__ import annotations

import asyncio
import copy
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from appliance import config_writer
from appliance.adapters import certificates
from appliance.bootstrap import ensure_config, setup_notice, sync_token_file, token_file
from appliance.config import load
from appliance.supervision.restart import RestartPlan
from tests.store_support import running_store, storage_overrides
from tests.support import PASSWORD, RunningServer, make_settings, running_server
from tests.test_cli import free_port
from tests.turn_support import running_turn, turn_overrides

TOKEN = "test-setup-token-0123456789abcdef"
SHARE = "appliance.test"


class RecordingRestarter:
    """Stands in for supervisord/systemd: remembers what it was asked to restart."""

    kind = "supervisord"

    def __init__(self) -> None:
        self.plans: list[RestartPlan] = []
        self.called = asyncio.Event()

    async def apply(self, plan: RestartPlan) -> None:
        self.plans.append(plan)
        self.called.set()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Setup {token}"}


def valid_plan() -> dict[str, Any]:
    return copy.deepcopy(
        {
            "organisation": {"name": "Riverside Clinic"},
            "admin": {"username": "boss", "password": PASSWORD},
            "reach": {"share_name": SHARE, "extra_names": [SHARE]},
            "tls": {"mode": "internal"},
            "turn": {"port": 3478, "tls_port": 5349, "min_port": 49160, "max_port": 49200},
            "storage": {"mode": "managed"},
            "recording": {"enabled": True, "retention_days": 14},
        }
    )


def pending(**sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {"setup": {"token": TOKEN}}
    overrides.update(sections)
    return overrides


def restarter_of(server: RunningServer) -> RecordingRestarter:
    restarter = RecordingRestarter()
    server.app.container.setup.restarter = restarter
    return restarter


@pytest.fixture
async def wizard(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path / "data", pending()) as server:
        restarter_of(server)
        yield server


async def validate(server: RunningServer, step: str, body: Any) -> Any:
    return await server.http.post(f"/api/setup/validate/{step}", json=body, headers=auth())


def field_errors(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    fields: dict[str, str] = error["fields"]
    return fields


WIZARD_CALLS = [
    ("POST", "/api/setup/token", None),
    ("GET", "/api/setup/environment", None),
    ("GET", "/api/setup/stun", None),
    ("POST", "/api/setup/validate/organisation", {"organisation": {"name": "X"}}),
    ("POST", "/api/setup/finish", valid_plan()),
]


# -- the token ------------------------------------------------------------------------------------


async def test_site_says_setup_is_pending(wizard: RunningServer) -> None:
    site = await wizard.http.get("/api/site")
    assert site.status_code == 200
    assert site.json() == {
        "name": "",
        "setup_pending": True,
        "recording_enabled": False,
        "password_min_length": 8,
    }
    ok = await wizard.http.post("/api/setup/token", headers=auth())
    assert ok.status_code == 200
    assert ok.json()["setup_pending"] is True


async def test_every_wizard_endpoint_needs_the_token(wizard: RunningServer) -> None:
    for method, path, body in WIZARD_CALLS:
        missing = await wizard.http.request(method, path, json=body)
        assert missing.status_code == 401, path
        assert missing.json()["error"]["code"] == "token_missing"
        # The token in another scheme, or in the URL, does not count.
        for headers, url in [
            ({"Authorization": f"Bearer {TOKEN}"}, path),
            ({}, f"{path}?token={TOKEN}"),
            ({"Authorization": "Setup"}, path),
        ]:
            refused = await wizard.http.request(method, url, json=body, headers=headers)
            assert refused.status_code == 401, (path, headers, url)
        wrong = await wizard.http.request(method, path, json=body, headers=auth("guess" * 7))
        assert wrong.status_code == 401
        assert wrong.json()["error"] == {"code": "token_invalid", "message": "wrong set-up token"}
        assert TOKEN not in wrong.text
    assert (await wizard.http.get("/api/site")).json()["setup_pending"] is True


async def test_wrong_tokens_are_throttled_per_client(tmp_path: Path) -> None:
    overrides = pending(auth={"login_free_failures": 2, "login_base_delay": 30.0})
    async with running_server(tmp_path / "data", overrides) as server:
        for _ in range(2):
            wrong = await server.http.post("/api/setup/token", headers=auth("nope" * 8))
            assert wrong.status_code == 401
        limited = await server.http.post("/api/setup/token", headers=auth("nope" * 8))
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 29
        # While throttled even the right token waits: guessing gains nothing.
        right = await server.http.post("/api/setup/token", headers=auth())
        assert right.status_code == 429
        # Logins keep their own counters.
        await server.add_user("alice")
        assert (await server.login("alice"))["access_token"]
        # The wait is over (moved back in time rather than slept through): the token works.
        throttle = server.app.container.setup._throttle
        for key in throttle.keys("127.0.0.1", "127.0.0.1"):
            attempts = await throttle._store.get(key)
            assert attempts is not None
            attempts.last_failure -= 3600
        assert (await server.http.post("/api/setup/token", headers=auth())).status_code == 200


# -- bodies -------------------------------------------------------------------------------------


async def test_malformed_and_oversized_bodies(wizard: RunningServer) -> None:
    raw = await wizard.http.post(
        "/api/setup/validate/admin",
        content=b"{not json",
        headers={**auth(), "content-type": "application/json"},
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["code"] == "invalid_request"
    body: object
    for body in (
        ["a", "list"],
        {"admin": {"username": "boss"}},
        {"admin": {"username": "boss", "password": PASSWORD, "is_root": True}},
        {"turn": {"port": "three", "tls_port": 1, "min_port": 2, "max_port": 3}},
        {"organisation": {"name": "x" * 201}},
        {"reach": {"share_name": SHARE, "extra_names": ["a.test"] * 40}},
        {"surprise": {}},
    ):
        response = await validate(wizard, "admin", body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_request"
    fields = field_errors(await validate(wizard, "turn", {"turn": {"port": "three"}}))
    assert "turn.port" in fields
    unknown = await validate(wizard, "nonsense", {})
    assert unknown.status_code == 404
    missing = field_errors(await validate(wizard, "tls", {"admin": valid_plan()["admin"]}))
    assert missing == {"tls": "this step is missing from the request"}
    huge = await wizard.http.post(
        "/api/setup/finish",
        content=b"x" * (70 * 1024),
        headers={**auth(), "content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large"
    partial = valid_plan()
    del partial["storage"]
    incomplete = await wizard.http.post("/api/setup/finish", json=partial, headers=auth())
    assert "storage" in field_errors(incomplete)
    assert (await wizard.http.get("/api/site")).json()["setup_pending"] is True


# -- each step ------------------------------------------------------------------------------------

TURN = valid_plan()["turn"]

STEP_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("organisation", {"name": "   "}, "organisation.name"),
    ("organisation", {"name": "x" * 81}, "organisation.name"),
    ("organisation", {"name": "Bad\u0007Bell"}, "organisation.name"),
    ("admin", {"username": "boss", "password": "short"}, "admin.password"),
    ("admin", {"username": "boss", "password": "Password1"}, "admin.password"),
    ("admin", {"username": "bossbossboss", "password": "BossBossBoss"}, "admin.password"),
    ("admin", {"username": "-boss", "password": PASSWORD}, "admin.username"),
    ("admin", {"username": "", "password": PASSWORD}, "admin.username"),
    ("reach", {"share_name": SHARE, "extra_names": [SHARE, "not a name!"]}, "reach.extra_names"),
    ("reach", {"share_name": "*.wild.test", "extra_names": ["*.wild.test"]}, "reach.extra_names"),
    ("reach", {"share_name": "elsewhere.test", "extra_names": []}, "reach.share_name"),
    ("reach", {"share_name": "", "extra_names": []}, "reach.share_name"),
    ("tls", {"mode": "upload", "cert_pem": "", "key_pem": ""}, "tls.cert_pem"),
    ("tls", {"mode": "upload", "cert_pem": "not pem", "key_pem": "no"}, "tls.cert_pem"),
    ("turn", {**TURN, "port": 8080}, "turn.port"),
    ("turn", {**TURN, "tls_port": 8443}, "turn.tls_port"),
    ("turn", {**TURN, "port": 70000}, "turn.port"),
    ("turn", {**TURN, "tls_port": None}, "turn.tls_port"),
    ("turn", {**TURN, "tls_port": 3478}, "turn.tls_port"),
    ("turn", {**TURN, "min_port": 49200, "max_port": 49160}, "turn.max_port"),
    ("turn", {**TURN, "min_port": 80, "max_port": 49160}, "turn.min_port"),
    ("turn", {**TURN, "min_port": 5000, "max_port": 9000}, "turn.min_port"),
    ("storage", {"mode": "external", "endpoint": "ftp://s3.test"}, "storage.endpoint"),
    ("storage", {"mode": "external", "endpoint": "http://s3.test/path"}, "storage.endpoint"),
    ("storage", {"mode": "external", "bucket": "Bad_Bucket"}, "storage.bucket"),
    ("storage", {"mode": "external", "access_key": ""}, "storage.access_key"),
    ("storage", {"mode": "external", "secret_key": ""}, "storage.secret_key"),
    ("recording", {"enabled": True, "retention_days": 0}, "recording.retention_days"),
    ("recording", {"enabled": False, "retention_days": None}, "recording.retention_days"),
]


async def test_each_step_names_the_bad_field(wizard: RunningServer) -> None:
    for step, values, field in STEP_ERRORS:
        draft = {step: values}
        if step == "tls":
            draft["reach"] = valid_plan()["reach"]
        fields = field_errors(await validate(wizard, step, draft))
        assert field in fields, (step, values, fields)
        assert fields[field], fields
    # Several at once: each named.
    bad_turn = {"port": 8080, "tls_port": 0, "min_port": 10, "max_port": None}
    fields = field_errors(await validate(wizard, "turn", {"turn": bad_turn}))
    assert set(fields) == {"turn.port", "turn.tls_port", "turn.min_port", "turn.max_port"}
    too_short = field_errors(
        await validate(wizard, "admin", {"admin": {"username": "boss", "password": "short"}})
    )
    assert too_short == {"admin.password": "must be at least 8 characters"}
    common = field_errors(
        await validate(wizard, "admin", {"admin": {"username": "boss", "password": "qwerty123"}})
    )
    assert common == {"admin.password": "is one of the most common passwords; choose another"}


async def test_valid_steps_pass_and_turn_lists_the_firewall(wizard: RunningServer) -> None:
    plan = valid_plan()
    for step in plan:
        response = await validate(wizard, step, plan)
        assert response.status_code == 200, (step, response.text)
        assert response.json()["ok"] is True
    firewall = (await validate(wizard, "turn", plan)).json()["firewall"]
    assert {"ports": "3478", "protocol": "UDP and TCP", "purpose": "STUN and TURN"} in firewall
    assert {"ports": "49160-49200", "protocol": "UDP", "purpose": "call media relay"} in firewall
    assert any(rule["ports"] == "8443" for rule in firewall)
    # Validation alone changes nothing.
    assert await wizard.app.container.users.count() == 0


async def test_taken_username_is_refused(wizard: RunningServer) -> None:
    await wizard.add_user("boss", password="another password")
    fields = field_errors(await validate(wizard, "admin", valid_plan()))
    assert fields == {"admin.username": "this username is already taken"}


async def test_environment_is_prefilled_from_the_box(wizard: RunningServer) -> None:
    response = await wizard.http.get("/api/setup/environment", headers=auth())
    assert response.status_code == 200
    env = response.json()
    assert env["mdns_name"].endswith(".local")
    assert "localhost" in env["covered_names"]
    assert env["mdns_name"] in env["share_names"]
    assert "localhost" not in env["share_names"]
    assert env["web"] == {"port": 8080, "https_port": 8443}
    assert env["stun_configured"] is False
    assert env["password_min_length"] == 8
    defaults = env["defaults"]
    assert defaults["turn"] == TURN
    assert defaults["storage"]["mode"] == "managed"
    assert defaults["reach"]["share_name"] == env["share_names"][0]
    assert defaults["recording"] == {"enabled": False, "retention_days": 30}
    # Secrets stay on the box.
    secret = wizard.settings.config.storage.secret_key.get_secret_value()
    assert secret not in response.text
    assert wizard.settings.config.turn.secret.get_secret_value() not in response.text


async def test_stun_without_servers_says_so(wizard: RunningServer) -> None:
    report = (await wizard.http.get("/api/setup/stun", headers=auth())).json()
    assert report["configured"] is False
    assert report["needs_relay"] == "unknown"
    assert "No STUN servers are configured" in report["verdict"]


@pytest.mark.timeout(90)
async def test_stun_probe_through_a_local_coturn(tmp_path: Path) -> None:
    turn = turn_overrides()
    turn.update(stun_servers=[f"127.0.0.1:{turn['port']}"], stun_timeout=0.3)
    async with (
        running_server(tmp_path / "data", pending(turn=turn)) as server,
        running_turn(server.settings),
    ):
        response = await server.http.get("/api/setup/stun", headers=auth())
        assert response.status_code == 200
        report = response.json()
        assert report["configured"] is True
        assert report["servers"] == [f"127.0.0.1:{turn['port']}"]
        assert report["public_address"] == "127.0.0.1"
        assert report["nat_type"]
        assert report["needs_relay"] in ("no", "sometimes", "yes", "unknown")
        assert len(report["verdict"]) > 40
        # Asked again within a minute: the same answer, not a new probe.
        again = await server.http.get("/api/setup/stun", headers=auth())
        assert again.json() == report


# -- storage: a live round trip -------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_external_s3_needs_a_live_round_trip(tmp_path: Path) -> None:
    store_settings = make_settings(tmp_path / "s3", {"storage": storage_overrides()})
    store = store_settings.config.storage
    external = {
        "mode": "external",
        "endpoint": f"http://{store.address}",
        "bucket": "wizard-media",
        "region": "us-east-1",
        "access_key": store.access_key,
        "secret_key": store.secret_key.get_secret_value(),
    }
    async with (
        running_store(store_settings),
        running_server(tmp_path / "data", pending()) as server,
    ):
        restarter = restarter_of(server)
        accepted = await validate(server, "storage", {"storage": external})
        assert accepted.status_code == 200, accepted.text
        # The check object was deleted again; the bucket was made.
        objects = tmp_path / "s3" / "objects" / "wizard-media"
        assert objects.is_dir()
        assert [p for p in objects.rglob("*") if p.is_file()] == []

        wrong_secret = field_errors(
            await validate(server, "storage", {"storage": {**external, "secret_key": "x" * 30}})
        )
        assert list(wrong_secret) == ["storage.secret_key"]
        assert "x" * 30 not in str(wrong_secret)
        dead = {**external, "endpoint": f"http://127.0.0.1:{free_port()}"}
        refused = field_errors(await validate(server, "storage", {"storage": dead}))
        assert refused == {"storage.endpoint": f"no answer from 127.0.0.1:{dead['endpoint'][17:]}"}

        plan = valid_plan()
        plan["storage"] = external
        done = await server.http.post("/api/setup/finish", json=plan, headers=auth())
        assert done.status_code == 200, done.text
        config = load(server.settings.data_dir).config.storage
        assert config.managed == "none"
        assert config.endpoint == external["endpoint"]
        assert config.bucket == "wizard-media"
        assert config.access_key == store.access_key
        assert config.secret_key.get_secret_value() == external["secret_key"]
        await restarter.called.wait()
        assert restarter.plans == [RestartPlan(restart=("turn",), stop=("store",), web=True)]


# -- TLS: keep the CA, or upload a certificate ----------------------------------------------------


def make_pair(names: list[str]) -> tuple[str, str]:
    ca_key, ca_cert = certificates.create_ca("Test CA")
    key, chain = certificates.issue_server_cert(ca_key, ca_cert, names, now=datetime.now(UTC))
    return chain.decode(), key.decode()


async def test_tls_upload_checks_the_pair(wizard: RunningServer) -> None:
    cert, key = make_pair([SHARE, "www.appliance.test"])
    _, other_key = make_pair([SHARE])
    reach = valid_plan()["reach"]
    good = await validate(
        wizard, "tls", {"reach": reach, "tls": {"mode": "upload", "cert_pem": cert, "key_pem": key}}
    )
    assert good.status_code == 200, good.text
    assert good.json()["certificate"]["names"] == [SHARE, "www.appliance.test"]
    mismatched = field_errors(
        await validate(
            wizard,
            "tls",
            {"reach": reach, "tls": {"mode": "upload", "cert_pem": cert, "key_pem": other_key}},
        )
    )
    assert list(mismatched) == ["tls.key_pem"]
    assert "does not belong" in mismatched["tls.key_pem"]
    assert "PRIVATE KEY" not in str(mismatched)
    # The certificate must cover the name people are given.
    elsewhere, elsewhere_key = make_pair(["other.test"])
    uncovered = field_errors(
        await validate(
            wizard,
            "tls",
            {
                "reach": reach,
                "tls": {"mode": "upload", "cert_pem": elsewhere, "key_pem": elsewhere_key},
            },
        )
    )
    assert "appliance.test" in uncovered["tls.cert_pem"]

    plan = valid_plan()
    plan["tls"] = {"mode": "upload", "cert_pem": cert, "key_pem": key}
    done = await wizard.http.post("/api/setup/finish", json=plan, headers=auth())
    assert done.status_code == 200, done.text
    tls = load(wizard.settings.data_dir).config.tls
    assert tls.mode == "files"
    assert Path(tls.cert_file).read_text() == cert
    assert Path(tls.key_file).read_text() == key
    assert stat.S_IMODE(Path(tls.key_file).stat().st_mode) == 0o600


# -- finishing ------------------------------------------------------------------------------------


async def test_finish_creates_the_admin_writes_the_config_and_ends_setup(
    wizard: RunningServer,
) -> None:
    data_dir = wizard.settings.data_dir
    config_path = wizard.settings.config_path
    assert token_file(data_dir).read_text().strip() == TOKEN
    assert stat.S_IMODE(token_file(data_dir).stat().st_mode) == 0o600
    mode_before = stat.S_IMODE(config_path.stat().st_mode)

    response = await wizard.http.post("/api/setup/finish", json=valid_plan(), headers=auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"] == f"https://{SHARE}:8443/"
    assert body["trust_url"] == f"http://{SHARE}:8080/trust"
    assert (
        body["qr_svg"].startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in body["qr_svg"]
    )
    assert body["restart"] == "supervisord"
    assert any(rule["ports"] == "49160-49200" for rule in body["firewall"])
    restarter = wizard.app.container.setup.restarter
    assert isinstance(restarter, RecordingRestarter)
    await restarter.called.wait()
    assert restarter.plans == [RestartPlan(restart=("turn", "store"), stop=(), web=True)]

    # The admin can sign in.
    tokens = await wizard.login("boss")
    me = await wizard.http.get(
        "/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json() == {
        "user_id": 1,
        "username": "boss",
        "is_admin": True,
        "must_change_password": False,
    }

    # The config file: rewritten atomically, comments and mode kept, token gone.
    text = config_path.read_text()
    assert "# Appliance configuration." in text
    assert "One-time token for the set-up wizard" in text
    assert stat.S_IMODE(config_path.stat().st_mode) == mode_before
    assert [p.name for p in config_path.parent.glob(".appliance.toml.*")] == []
    config = load(data_dir).config
    assert config.setup.token.get_secret_value() == ""
    assert config.organisation.name == "Riverside Clinic"
    assert config.tls.mode == "internal"
    assert config.tls.extra_names == [SHARE]
    assert (config.turn.port, config.turn.tls_port) == (3478, 5349)
    assert (config.turn.min_port, config.turn.max_port) == (49160, 49200)
    assert config.recording.enabled is True
    assert config.recording.retention_days == 14
    assert config.storage.managed == "rclone"
    assert not token_file(data_dir).exists()

    site = (await wizard.http.get("/api/site")).json()
    # Recording is switched on by the restart that finishing asks the supervisor for.
    assert site == {
        "name": "Riverside Clinic",
        "setup_pending": False,
        "recording_enabled": False,
        "password_min_length": 8,
    }
    await expect_wizard_gone(wizard)


async def expect_wizard_gone(server: RunningServer) -> None:
    """Every wizard endpoint answers 404, whatever is sent: the old token, none, a bad body."""
    for method, path, body in [
        *WIZARD_CALLS,
        ("POST", "/api/setup/validate/admin", ["malformed"]),
        ("POST", "/api/setup/validate/nonsense", None),
    ]:
        for headers in (auth(), {}, auth("guess" * 7)):
            response = await server.http.request(method, path, json=body, headers=headers)
            assert response.status_code == 404, (method, path, headers, response.text)
            assert response.json()["error"]["code"] == "not_found"
    huge = await server.http.post(
        "/api/setup/finish",
        content=b"x" * (70 * 1024),
        headers={**auth(), "content-type": "application/json"},
    )
    assert huge.status_code == 404


async def test_setup_stays_done_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running_server(data_dir, pending()) as server:
        restarter_of(server)
        done = await server.http.post("/api/setup/finish", json=valid_plan(), headers=auth())
        assert done.status_code == 200
    # A new server on the same data dir, config as the wizard left it (`setup` not overridden).
    async with running_server(data_dir, {"setup": {}}) as again:
        assert again.settings.config.setup.token.get_secret_value() == ""
        site = (await again.http.get("/api/site")).json()
        assert site == {
            "name": "Riverside Clinic",
            "setup_pending": False,
            "recording_enabled": True,
            "password_min_length": 8,
        }
        await expect_wizard_gone(again)
        assert (await again.login("boss"))["access_token"]
        assert not token_file(data_dir).exists()


async def test_two_finishes_at_once_one_wins(wizard: RunningServer) -> None:
    second = valid_plan()
    second["admin"]["username"] = "other-boss"
    second["organisation"]["name"] = "Other Org"
    first, other = await asyncio.gather(
        wizard.http.post("/api/setup/finish", json=valid_plan(), headers=auth()),
        wizard.http.post("/api/setup/finish", json=second, headers=auth()),
    )
    statuses = sorted([first.status_code, other.status_code])
    assert statuses == [200, 404], (first.text, other.text)
    loser = first if first.status_code == 404 else other
    assert loser.json()["error"]["code"] == "not_found"
    users = await wizard.app.container.users.list_all()
    assert len(users) == 1
    name = load(wizard.settings.data_dir).config.organisation.name
    winner = "Riverside Clinic" if users[0].username == "boss" else "Other Org"
    assert name == winner


async def test_a_failed_write_can_be_finished_again(
    wizard: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin is created before the config is written; if writing fails, the same plan
    finishes on a second try (the admin is reused, not refused as taken)."""

    def disk_full(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(config_writer, "atomic_write", disk_full)
        failed = await wizard.http.post("/api/setup/finish", json=valid_plan(), headers=auth())
    assert failed.status_code == 503, failed.text
    assert failed.json()["error"]["code"] == "unavailable"
    assert (await wizard.http.get("/api/site")).json()["setup_pending"] is True
    again = await wizard.http.post("/api/setup/finish", json=valid_plan(), headers=auth())
    assert again.status_code == 200, again.text
    assert await wizard.app.container.users.count() == 1


# -- the token file and the console notice ------------------------------------------------------


def test_token_file_follows_the_config(tmp_path: Path) -> None:
    settings, created = ensure_config(tmp_path / "data")
    assert created
    token = settings.config.setup.token.get_secret_value()
    assert len(token) >= 24
    path = token_file(settings.data_dir)
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    notice = setup_notice(settings)
    assert notice is not None
    assert token in notice and "https://localhost:8443/" in notice and str(path) in notice
    assert token not in (setup_notice(settings, show_token=False) or "")

    done = make_settings(tmp_path / "data")  # clears the token, as finishing does
    assert setup_notice(done) is None
    sync_token_file(done)
    assert not path.exists()


async def test_openapi_lists_the_wizard(wizard: RunningServer) -> None:
    spec = (await wizard.http.get("/openapi.json")).json()
    for path in (
        "/api/site",
        "/api/setup/token",
        "/api/setup/environment",
        "/api/setup/stun",
        "/api/setup/validate/{step}",
        "/api/setup/finish",
    ):
        assert path in spec["paths"], (path, sorted(spec["paths"]))
    finish = spec["paths"]["/api/setup/finish"]["post"]
    assert "application/json" in finish["requestBody"]["content"]
