"""Login, refresh rotation, reuse detection, logout, throttling and HTTP error shapes."""

from __future__ import annotations

from pathlib import Path

from tests.support import PASSWORD, RunningServer, running_server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_returns_token_pair(server: RunningServer) -> None:
    await server.add_user("alice", admin=True)
    body = await server.login("alice")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == server.settings.config.auth.access_ttl
    me = await server.http.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "user_id": 1,
        "username": "alice",
        "is_admin": True,
        "must_change_password": False,
    }


async def test_login_is_case_insensitive_on_username(server: RunningServer) -> None:
    await server.add_user("Alice")
    assert (await server.login("alice"))["access_token"]


async def test_wrong_password_and_unknown_user_look_the_same(server: RunningServer) -> None:
    await server.add_user("alice")
    wrong = await server.http.post(
        "/api/auth/login", json={"username": "alice", "password": "nope-nope"}
    )
    unknown = await server.http.post(
        "/api/auth/login", json={"username": "nobody", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"


async def test_malformed_login_bodies(server: RunningServer) -> None:
    cases = [
        {"username": "alice"},
        {"username": "", "password": "x"},
        {"username": 5, "password": "x"},
        {"username": "a", "password": "x", "admin": True},
        ["not", "an", "object"],
    ]
    for body in cases:
        response = await server.http.post("/api/auth/login", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_request"
    raw = await server.http.post(
        "/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["code"] == "invalid_request"


async def test_oversized_body_refused(server: RunningServer) -> None:
    response = await server.http.post(
        "/api/auth/login", json={"username": "a", "password": "x" * 100_000}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_unknown_route_and_method(server: RunningServer) -> None:
    missing = await server.http.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = await server.http.get("/api/auth/login")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "invalid_request"


async def test_me_requires_a_valid_bearer(server: RunningServer) -> None:
    await server.add_user("alice")
    tokens = await server.login("alice")
    missing = await server.http.get("/api/me")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "token_missing"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Basic abc", "Bearer", "Bearer garbage"):
        response = await server.http.get("/api/me", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "token_invalid"
    refresh_as_access = await server.http.get("/api/me", headers=bearer(tokens["refresh_token"]))
    assert refresh_as_access.json()["error"]["code"] == "token_invalid"


async def test_refresh_rotates(server: RunningServer) -> None:
    await server.add_user("alice")
    first = await server.login("alice")
    second = (
        await server.http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    third = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert third.status_code == 200
    assert (
        await server.http.get("/api/me", headers=bearer(third.json()["access_token"]))
    ).is_success


async def test_refresh_reuse_revokes_the_whole_family(server: RunningServer) -> None:
    await server.add_user("alice")
    first = await server.login("alice")
    other_login = await server.login("alice")
    second = (
        await server.http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    replay = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "token_reused"
    # Everything from that login is now dead: the newest refresh token and its access tokens.
    after = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after.json()["error"]["code"] == "token_revoked"
    for token in (first["access_token"], second["access_token"]):
        me = await server.http.get("/api/me", headers=bearer(token))
        assert me.json()["error"]["code"] == "token_revoked"
    # Another login of the same user is untouched.
    assert (
        await server.http.get("/api/me", headers=bearer(other_login["access_token"]))
    ).is_success


async def test_refresh_with_bad_tokens(server: RunningServer) -> None:
    await server.add_user("alice")
    tokens = await server.login("alice")
    for token, code in [
        ("garbage", "token_invalid"),
        (tokens["access_token"], "token_invalid"),
    ]:
        response = await server.http.post("/api/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code


async def test_logout_revokes_tokens(server: RunningServer) -> None:
    await server.add_user("alice")
    tokens = await server.login("alice")
    out = await server.http.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.status_code == 204
    me = await server.http.get("/api/me", headers=bearer(tokens["access_token"]))
    assert me.json()["error"]["code"] == "token_revoked"
    refresh = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refresh.json()["error"]["code"] == "token_revoked"
    again = await server.http.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert again.status_code == 401


async def test_login_throttled_per_username(tmp_path: Path) -> None:
    overrides = {"auth": {"login_free_failures": 3, "login_base_delay": 30.0}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        for _ in range(3):
            bad = await server.http.post(
                "/api/auth/login", json={"username": "alice", "password": "wrong-one"}
            )
            assert bad.status_code == 401
        limited = await server.http.post(
            "/api/auth/login", json={"username": "ALICE", "password": PASSWORD}
        )
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 30
        # The next failure doubles the wait.
        throttle = server.app.container.throttle
        await throttle.failed("alice", "127.0.0.2")
        retry = await server.http.post(
            "/api/auth/login", json={"username": "alice", "password": PASSWORD}
        )
        assert 31 <= int(retry.headers["Retry-After"]) <= 60


async def test_login_throttled_per_address(tmp_path: Path) -> None:
    overrides = {"auth": {"login_free_failures": 3, "login_base_delay": 30.0}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        for name in ("u1", "u2", "u3"):
            await server.http.post(
                "/api/auth/login", json={"username": name, "password": "wrong-one"}
            )
        # A different username from the same address is held back too.
        limited = await server.http.post(
            "/api/auth/login", json={"username": "alice", "password": PASSWORD}
        )
        assert limited.status_code == 429


async def test_throttle_delay_expires(tmp_path: Path) -> None:
    overrides = {"auth": {"login_free_failures": 1, "login_base_delay": 0.2}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        await server.http.post("/api/auth/login", json={"username": "alice", "password": "bad-one"})
        limited = await server.http.post(
            "/api/auth/login", json={"username": "alice", "password": PASSWORD}
        )
        assert limited.status_code == 429
        throttle = server.app.container.throttle
        # Wait out the delay by moving the recorded failure back instead of sleeping.
        for key in throttle.keys("alice", "127.0.0.1"):
            attempts = await throttle._store.get(key)
            assert attempts is not None
            attempts.last_failure -= 1.0
        ok = await server.http.post(
            "/api/auth/login", json={"username": "alice", "password": PASSWORD}
        )
        assert ok.status_code == 200


async def test_users_directory_needs_auth(server: RunningServer) -> None:
    response = await server.http.get("/api/users")
    assert response.status_code == 401


async def test_health_and_openapi(server: RunningServer) -> None:
    health = await server.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["services"]["web"]["state"] == "up"
    assert health.json()["services"]["database"]["state"] == "up"
    # No coturn runs beside this test server.
    assert health.json()["services"]["turn"]["state"] == "down"
    assert health.json()["status"] == "degraded"
    spec = (await server.http.get("/openapi.json")).json()
    for path in (
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/me",
        "/api/users",
        "/api/rooms",
        "/api/rooms/direct",
        "/api/rooms/{room_id}",
        "/api/rooms/{room_id}/messages",
        "/api/rooms/{room_id}/members",
        "/api/calls",
        "/api/turn",
        "/api/media/uploads",
        "/api/media/{media_id}",
    ):
        assert path in spec["paths"], (path, sorted(spec["paths"]))
    login_schema = spec["paths"]["/api/auth/login"]["post"]["requestBody"]
    assert "application/json" in login_schema["content"]


async def test_security_headers(server: RunningServer) -> None:
    response = await server.http.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
