"""Socket.IO connections: every refusal carries a code; sockets never outlive their token."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import socketio

from tests.support import RunningServer, running_server


async def refused(server: RunningServer, auth: Any) -> dict[str, Any]:
    client = server.client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(None, auth=auth)
    assert isinstance(client.connect_error, dict), client.connect_error
    return client.connect_error


def forge(server: RunningServer, **changes: Any) -> str:
    auth = server.settings.config.auth
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": auth.issuer,
        "aud": auth.audience,
        "sub": "1",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "typ": "access",
        "fam": "f",
    }
    key = changes.pop("key", auth.jwt_secret.get_secret_value())
    payload.update(changes)
    return jwt.encode(payload, key, "HS256", headers={"kid": auth.jwt_key_id})


async def test_valid_token_connects(server: RunningServer) -> None:
    await server.add_user("alice")
    client = await server.connect(await server.token("alice"))
    assert client.sio.connected
    assert await client.next("presence:list") == {"users": [{"user_id": 1, "username": "alice"}]}


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "token_missing"),
        ({}, "token_missing"),
        ({"token": ""}, "token_missing"),
        ({"token": 42}, "token_missing"),
        ({"token": "not.a.jwt"}, "token_invalid"),
        ({"token": "x" * 10_000}, "token_invalid"),
    ],
)
async def test_missing_and_malformed(server: RunningServer, auth: Any, code: str) -> None:
    error = await refused(server, auth)
    assert error["message"] == code
    assert error["data"]["code"] == code
    assert error["data"]["message"]


async def test_forged_tokens_refused(server: RunningServer) -> None:
    await server.add_user("alice")
    now = int(time.time())
    cases = {
        "token_expired": forge(server, iat=now - 100, exp=now - 50),
        "token_invalid": forge(server, key="k" * 64),
    }
    for code, token in cases.items():
        assert (await refused(server, {"token": token}))["message"] == code
    for change in ({"aud": "other"}, {"iss": "other"}, {"typ": "refresh"}):
        assert (await refused(server, {"token": forge(server, **change)}))["message"] == (
            "token_invalid"
        )


async def test_alg_none_refused(server: RunningServer) -> None:
    await server.add_user("alice")
    good = forge(server)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = good.split(".")[1]
    token = header.decode().rstrip("=") + "." + body + "."
    assert (await refused(server, {"token": token}))["message"] == "token_invalid"


async def test_refresh_token_as_access_refused(server: RunningServer) -> None:
    await server.add_user("alice")
    tokens = await server.login("alice")
    error = await refused(server, {"token": tokens["refresh_token"]})
    assert error["message"] == "token_invalid"


async def test_revoked_token_refused(server: RunningServer) -> None:
    await server.add_user("alice")
    tokens = await server.login("alice")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await server.http.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await refused(server, {"token": tokens["access_token"]}))["message"] == "token_revoked"


async def test_logout_closes_open_sockets_of_that_login(server: RunningServer) -> None:
    await server.add_user("alice")
    tokens = await server.login("alice")
    other = await server.user_socket("alice")  # a second login stays connected
    client = await server.connect(tokens["access_token"])
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    await server.http.post("/api/auth/logout", headers=headers)
    close = await client.next("session:close")
    assert close["reason"] == "token_revoked"
    await asyncio.wait_for(client.disconnected.wait(), 5)
    assert other.sio.connected
    assert (await other.call("presence:list"))["ok"] is True


async def test_open_socket_closed_at_token_expiry(tmp_path: Path) -> None:
    overrides = {"auth": {"access_ttl": 2, "leeway": 0}, "web": {"presence_grace": 0}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        client = await server.connect(await server.token("alice"))
        close = await client.next("session:close", timeout=6)
        assert close == {"reason": "token_expired", "message": "access token expired"}
        await asyncio.wait_for(client.disconnected.wait(), 5)
        # The server is fine afterwards: the close wrote last_seen and can still log in.
        assert (await server.login("alice"))["access_token"]
        assert not server.app.container.db.conn.in_transaction


async def test_auth_refresh_keeps_socket_open(tmp_path: Path) -> None:
    overrides = {"auth": {"access_ttl": 2, "leeway": 0}, "web": {"presence_grace": 0}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        first = await server.login("alice")
        client = await server.connect(first["access_token"])
        await client.next("presence:list")
        # Wait into the token's last second, then hand over a fresh one.
        await asyncio.sleep(1.0)
        fresh = await server.http.post(
            "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        ack = await client.call("auth:refresh", {"token": fresh.json()["access_token"]})
        assert ack["ok"] is True
        assert ack["expires_at"] > time.time()
        # The old expiry passes without a close; the new one closes it.
        close = await client.next("session:close", timeout=6)
        assert close["reason"] == "token_expired"
        # It lived past the first token's expiry.
        assert (
            time.time()
            >= json.loads(base64.urlsafe_b64decode(first["access_token"].split(".")[1] + "=="))[
                "exp"
            ]
        )


async def test_auth_refresh_rejects_bad_payloads(server: RunningServer) -> None:
    await server.add_user("alice")
    await server.add_user("bob")
    client = await server.user_socket("alice")
    bob_token = await server.token("bob")
    alice_refresh = (await server.login("alice"))["refresh_token"]
    cases = [
        (None, "invalid_request"),
        ("token", "invalid_request"),
        ({}, "invalid_request"),
        ({"token": 5}, "invalid_request"),
        ({"token": "x", "extra": 1}, "invalid_request"),
        ({"token": "garbage"}, "token_invalid"),
        ({"token": alice_refresh}, "token_invalid"),
        ({"token": bob_token}, "forbidden"),
    ]
    for payload, code in cases:
        ack = await client.call("auth:refresh", payload)
        assert ack["ok"] is False, payload
        assert ack["error"]["code"] == code, payload
    # The socket is still usable after all of that.
    assert (await client.call("presence:list"))["ok"] is True


async def test_unknown_event_gets_typed_error(server: RunningServer) -> None:
    await server.add_user("alice")
    client = await server.user_socket("alice")
    ack = await client.call("no:such-event", {"x": 1})
    assert ack == {
        "ok": False,
        "error": {"code": "invalid_request", "message": ack["error"]["message"]},
    }


async def test_oversized_frame_drops_only_that_socket(tmp_path: Path) -> None:
    overrides = {"web": {"presence_grace": 0, "max_http_buffer_size": 4096}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        big = await server.user_socket("alice")
        small = await server.user_socket("alice")
        await big.sio.emit("presence:list", {"pad": "x" * 20_000})
        await asyncio.wait_for(big.disconnected.wait(), 5)
        assert (await small.call("presence:list"))["ok"] is True


async def test_foreign_origin_refused(server: RunningServer) -> None:
    await server.add_user("alice")
    token = await server.token("alice")
    client = server.client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(token, headers={"Origin": "https://evil.example"})
    same = server.client()
    host = server.url.removeprefix("http://")
    await same.connect(token, headers={"Origin": f"http://{host}"})
    assert same.sio.connected
    await same.close()


async def test_extra_arguments_get_typed_error(server: RunningServer) -> None:
    await server.add_user("alice")
    client = await server.user_socket("alice")
    for event in ("presence:list", "auth:refresh", "chat:message", "no:such"):
        ack = await client.sio.call(event, ({}, 2), timeout=5)  # a tuple: two arguments
        assert ack["ok"] is False, event
        assert ack["error"]["code"] == "invalid_request", event
    assert (await client.call("presence:list"))["ok"]
