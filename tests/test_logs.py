"""Log lines: one per event, with a level, `text` (key=value) or `json`; never a secret.

The full scenario runs the `web` service as a subprocess (`python -m appliance web`, as systemd
and supervisord start it) at DEBUG level with all its output captured, drives everything that
handles a secret (set-up token, logins right and wrong, the CLI's `user add`, token refresh, a
Socket.IO session with `auth:refresh`, TURN credentials, an upload through the real store, the
metrics token, bad frames), then greps the output for every secret used.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx
import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families

from appliance.config import Settings
from appliance.observability.logs import (
    OWN_HANDLER_LOGGERS,
    QUIET_LOGGERS,
    LineFormatter,
    configure_logging,
    is_journal,
    redact,
)
from appliance.services.turnserver import coturn_line
from tests.store_support import running_store, storage_overrides
from tests.support import EventClient, make_settings, stop_process
from tests.test_cli import free_port
from tests.test_setup_api import valid_plan
from tests.turn_support import turn_overrides

SETUP_TOKEN = "setup-" + secrets.token_urlsafe(18)
METRICS_TOKEN = "metrics-" + secrets.token_urlsafe(18)
LEVELS = {"debug", "info", "warning", "error", "critical"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
TEXT_FIELD = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?: |$)')


def strong_password() -> str:
    return "pw-" + secrets.token_urlsafe(15)


class Secrets:
    """Every secret the scenario sees: config secrets, passwords, tokens, TURN credentials."""

    def __init__(self, settings: Settings) -> None:
        config = settings.config
        self.values: set[str] = {
            config.auth.jwt_secret.get_secret_value(),
            config.turn.secret.get_secret_value(),
            config.storage.secret_key.get_secret_value(),
            SETUP_TOKEN,
            METRICS_TOKEN,
        }

    def add(self, value: str) -> None:
        self.values.add(value)
        if value.count(".") == 2 and value.startswith("eyJ"):
            self.values.add(value.rsplit(".", 1)[1])  # a JWT's signature alone, too

    def add_tokens(self, body: dict[str, Any]) -> None:
        for key, found in body.items():
            if key.endswith("token") and isinstance(found, str):
                self.add(found)


@asynccontextmanager
async def web_process(
    settings: Settings, port: int, output: Path
) -> AsyncIterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    command = [sys.executable, "-m", "appliance", "--data-dir", str(settings.data_dir)]
    command += ["web", "--host", "127.0.0.1", "--port", str(port)]
    with output.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async with asyncio.timeout(30):
                while True:
                    assert proc.poll() is None, output.read_text()
                    try:
                        if (await http.get("/healthz")).status_code in (200, 503):
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
        yield proc
    finally:
        stop_process(proc)


def cli_add_user(settings: Settings, name: str, password: str) -> str:
    command = [sys.executable, "-m", "appliance", "--data-dir", str(settings.data_dir)]
    done = subprocess.run(
        [*command, "user", "add", name],
        input=f"{password}\n".encode(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return (done.stdout + done.stderr).decode()


async def scenario(http: httpx.AsyncClient, url: str, settings: Settings, seen: Secrets) -> str:
    """Drive the server; return what the CLI printed (checked like the server's output)."""
    wrong_setup = "wrong-" + secrets.token_urlsafe(12)
    seen.add(wrong_setup)
    refused = await http.post("/api/setup/token", headers={"Authorization": f"Setup {wrong_setup}"})
    assert refused.status_code == 401
    setup = {"Authorization": f"Setup {SETUP_TOKEN}"}
    assert (await http.post("/api/setup/token", headers=setup)).status_code == 200
    plan = valid_plan()
    plan["admin"]["password"] = admin_password = strong_password()
    seen.add(admin_password)
    finished = await http.post("/api/setup/finish", json=plan, headers=setup)
    assert finished.status_code == 200, finished.text
    admin = plan["admin"]["username"]

    wrong = strong_password()
    seen.add(wrong)
    bad_login = await http.post("/api/auth/login", json={"username": admin, "password": wrong})
    assert bad_login.status_code == 401
    carol_password = strong_password()
    seen.add(carol_password)
    cli_output = cli_add_user(settings, "carol", carol_password)

    async def login(name: str, password: str) -> dict[str, Any]:
        response = await http.post("/api/auth/login", json={"username": name, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        seen.add_tokens(body)
        if body.get("must_change_password"):
            fresh = strong_password()
            seen.add(fresh)
            changed = await http.post(
                "/api/account/password",
                json={"current_password": password, "new_password": fresh},
                headers={"Authorization": f"Bearer {body['access_token']}"},
            )
            assert changed.status_code == 204, changed.text
        return body

    boss = await login(admin, admin_password)
    carol = await login("carol", carol_password)
    refreshed = await http.post("/api/auth/refresh", json={"refresh_token": boss["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    seen.add_tokens(refreshed.json())
    reused = await http.post("/api/auth/refresh", json={"refresh_token": boss["refresh_token"]})
    assert reused.status_code == 401  # replayed: the whole login is revoked
    boss = await login(admin, admin_password)
    auth = {"Authorization": f"Bearer {boss['access_token']}"}

    turn = await http.get("/api/turn", headers=auth)
    assert turn.status_code == 200
    for server in turn.json()["iceServers"]:
        if "credential" in server:
            seen.add(server["credential"])

    metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200

    carol_id = (await http.get("/api/me", headers=_bearer(carol))).json()["user_id"]
    room = (await http.post("/api/rooms/direct", json={"user_id": carol_id}, headers=auth)).json()
    room_id = room["room"]["id"]

    client = EventClient(url)
    try:
        await client.connect(boss["access_token"])
        await client.next("presence:list")
        again = await login(admin, admin_password)
        ack = await client.call("auth:refresh", {"token": again["access_token"]})
        assert ack["ok"], ack
        sent = await client.call(
            "chat:message", {"room_id": room_id, "text": "hello", "client_msg_id": "c1"}
        )
        assert sent["ok"], sent
        unknown = await client.call("no:such-event", {"token": boss["access_token"]})
        assert unknown["ok"] is False

        asked = await http.post(
            "/api/media/uploads",
            json={
                "room_id": room_id,
                "filename": "a.png",
                "content_type": "image/png",
                "size": len(PNG),
            },
            headers=auth,
        )
        assert asked.status_code == 201, asked.text
        upload_url = asked.json()["upload"]["url"]
        seen.add(parse_qs(urlsplit(upload_url).query)["X-Amz-Signature"][0])
        put = await http.put(upload_url, content=PNG, headers={"Content-Type": "image/png"})
        assert put.status_code == 200, put.text
        done = await client.call("media:uploaded", {"media_id": asked.json()["media_id"]})
        assert done["ok"], done
        scraped = await http.get("/metrics")  # from 127.0.0.1: allowed without the token
        uploads = {
            sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(scraped.text)
            for sample in family.samples
            if sample.name == "appliance_uploads_total"
        }
        assert (uploads["requested"], uploads["completed"], uploads["missing"]) == (1, 1, 0)
    finally:
        await client.close()

    stranger = EventClient(url)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await stranger.connect(wrong)  # not a token: refused
    finally:
        await stranger.close()

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket") as ws,
    ):
        await ws.receive()  # engine.io OPEN
        await ws.send_str("\x00garbage" + boss["access_token"])
        closed = await ws.receive()
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    logout = await http.post("/api/auth/logout", headers=auth)
    assert logout.status_code == 204
    return cli_output


def _bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def parse_text_line(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    position = 0
    for match in TEXT_FIELD.finditer(line):
        assert match.start() == position, f"not key=value at {position}: {line!r}"
        raw = match.group(2)
        fields[match.group(1)] = json.loads(raw) if raw.startswith('"') else raw
        position = match.end()
    assert position == len(line), f"trailing text: {line!r}"
    return fields


def check_lines(text: str, fmt: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        assert line.strip(), "an empty line"
        record: dict[str, Any] = json.loads(line) if fmt == "json" else parse_text_line(line)
        assert record["level"] in LEVELS, line
        assert {"ts", "logger", "msg"} <= record.keys(), line
        records.append(record)
    return records


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_full_scenario_logs_no_secret(tmp_path: Path, fmt: str) -> None:
    data = tmp_path / "d"
    port = free_port()
    overrides: dict[str, dict[str, Any]] = {
        "setup": {"token": SETUP_TOKEN},
        "web": {"https_port": 0, "presence_grace": 0},
        "logging": {"format": fmt, "level": "debug"},
        "metrics": {"token": METRICS_TOKEN},
        "storage": storage_overrides(),
    }
    settings = make_settings(data, overrides)
    seen = Secrets(settings)
    output = tmp_path / "web.log"
    async with (
        running_store(settings),
        web_process(settings, port, output),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http,
    ):
        cli_output = await scenario(http, f"http://127.0.0.1:{port}", settings, seen)
    text = output.read_text(encoding="utf-8")
    records = check_lines(text, fmt)
    messages = " | ".join(str(r["msg"]) for r in records)
    assert "set-up finished" in messages, text
    assert "bad frame from 127.0.0.1" in messages, text
    assert all(r.get("service") == "web" for r in records)
    for secret in seen.values:
        assert secret, "an empty secret would match anything"
        assert secret not in text, f"a secret ({len(secret)} chars) is in the web log"
        assert secret not in cli_output, "a secret is in the CLI's output"
    cli_lines = [line for line in cli_output.splitlines() if line.startswith(("ts=", "{"))]
    check_lines("\n".join(cli_lines), fmt)


# -- the formatter, in this process ---------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger through `configure_logging`, put back as it was afterwards."""
    names = [*OWN_HANDLER_LOGGERS, *QUIET_LOGGERS, "uvicorn", "uvicorn.error", "hypercorn.error"]
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in ["", *names]
        for lg in [logging.getLogger(name or None)]
    }
    hook = sys.excepthook
    stream = io.StringIO()
    configure_logging("text", "debug", service="test", stream=stream)
    try:
        yield stream
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name or None)
            # pytest's own capture handlers come and go with each phase: not put back here.
            logger.handlers[:] = [h for h in handlers if not type(h).__module__.startswith("_")]
            logger.setLevel(level)
            logger.propagate = propagate
        sys.excepthook = hook
        logging.captureWarnings(False)


def test_text_lines_are_key_value_and_one_per_event(captured: io.StringIO) -> None:
    log = logging.getLogger("appliance.example")
    log.info("plain %s", "words", extra={"user_id": 7, "room": "a b", "ok": True})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed with password=%s", "hunter2-secret")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    first, second = parse_text_line(lines[0]), parse_text_line(lines[1])
    assert first["level"] == "info"
    assert first["logger"] == "appliance.example"
    assert first["service"] == "test"
    assert first["msg"] == "plain words"
    assert (first["user_id"], first["room"], first["ok"]) == ("7", "a b", "true")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert second["level"] == "error"
    assert "ValueError: boom\nsecond line" in second["exc"]
    assert "hunter2-secret" not in lines[1]


def test_libraries_go_through_the_one_handler(captured: io.StringIO) -> None:
    server = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
    assert not logging.getLogger("engineio.server").handlers
    assert not logging.getLogger("socketio.server").handlers
    server.logger.error("from python-socketio")
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, LineFormatter)]
    assert len(ours) == 1
    lines = [parse_text_line(line) for line in captured.getvalue().splitlines()]
    assert [(r["logger"], r["msg"]) for r in lines] == [
        ("socketio.server", "from python-socketio"),
        ("uvicorn.error", "from uvicorn"),
    ]


def test_json_lines() -> None:
    formatter = LineFormatter("json", service="web")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.count = 3
    line = formatter.format(record)
    assert "\n" not in line
    body = json.loads(line)
    assert body["level"] == "warning"
    assert body["msg"] == "a b"
    assert body["count"] == 3
    with pytest.raises(ValueError, match="text or json"):
        LineFormatter("xml")


def test_redaction_safety_net() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl"
    cases = {
        f"token {jwt} used": jwt,
        "Authorization: Bearer abcdefgh12345678": "abcdefgh12345678",
        "Authorization: Setup s3tup-t0ken-value": "s3tup-t0ken-value",
        "password=hunter2hunter2 and more": "hunter2hunter2",
        '{"refresh_token": "r3fr3sh-value"}': "r3fr3sh-value",
        "secret_key: sk-value-123": "sk-value-123",
        "/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=deadbeef99": "deadbeef99",
    }
    for text, secret in cases.items():
        assert secret not in redact(text), text
    for harmless in ("reason=token_revoked", "bad frame from 127.0.0.1: not JSON", ""):
        assert redact(harmless) == harmless


def test_journal_lines_carry_their_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, captured: io.StringIO
) -> None:
    """Under systemd (JOURNAL_STREAM names stderr) each line starts with its sd-daemon priority."""
    with (tmp_path / "journal").open("w", encoding="utf-8") as stream:
        found = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{found.st_dev}:{found.st_ino}")
        assert is_journal(stream)
        configure_logging("json", "info", service="web", stream=stream)
        logging.getLogger("appliance.x").warning("careful")
        logging.getLogger("appliance.x").info("fine")
    lines = (tmp_path / "journal").read_text(encoding="utf-8").splitlines()
    assert [line[:3] for line in lines] == ["<4>", "<6>"]
    assert json.loads(lines[0][3:])["msg"] == "careful"
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not is_journal(captured)  # a StringIO has no descriptor
    with (tmp_path / "other").open("w", encoding="utf-8") as other:
        assert not is_journal(other)


@pytest.mark.timeout(60)
async def test_turn_service_relogs_coturn_lines(tmp_path: Path) -> None:
    """`appliance turn`: its own lines and coturn's, every one a JSON object with a level."""
    overrides: dict[str, dict[str, Any]] = {
        "turn": turn_overrides(),
        "web": {"https_port": 0},
        "logging": {"format": "json"},
    }
    settings = make_settings(tmp_path / "d", overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    command = [sys.executable, "-m", "appliance", "--data-dir", str(settings.data_dir), "turn"]
    output = tmp_path / "turn.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        async with asyncio.timeout(30):
            while '"logger": "coturn"' not in output.read_text(encoding="utf-8"):
                assert proc.poll() is None, output.read_text(encoding="utf-8")
                await asyncio.sleep(0.05)
    finally:
        stop_process(proc)
    records = check_lines(output.read_text(encoding="utf-8"), "json")
    coturn = [r for r in records if r["logger"] == "coturn"]
    assert coturn and all(r["service"] == "turn" for r in records)
    assert settings.config.turn.secret.get_secret_value() not in output.read_text(encoding="utf-8")


def test_coturn_line_levels() -> None:
    cases = {
        b"0: : Relay address to use: 127.0.0.1\n": (
            logging.INFO,
            "Relay address to use: 127.0.0.1",
        ),
        b"12: (345): ERROR: Cannot bind\n": (logging.ERROR, "ERROR: Cannot bind"),
        b"0: : WARNING: cannot find file\n": (logging.WARNING, "WARNING: cannot find file"),
        b"0: : Cannot bind local socket\n": (logging.ERROR, "Cannot bind local socket"),
        b"\xff\xfe odd bytes\n": (logging.INFO, "\ufffd\ufffd odd bytes"),
    }
    for raw, expected in cases.items():
        assert coturn_line(raw) == expected, raw
