"""`GET /metrics`: a real server scraped from loopback, numbers that move with real traffic, and
the access rule (allowed networks, the token, switched off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.config import parse_config
from appliance.observability.access import MetricsAccess
from appliance.observability.metrics import Metrics
from appliance.transport.http.metrics_routes import login_outcome
from tests.support import PASSWORD, EventClient, RunningServer, running_server

METRICS_TOKEN = "scrape-me-0123456789abcdef"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(server: RunningServer, **headers: str) -> Samples:
    response = await server.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def direct_room(server: RunningServer, token: str, other: int) -> int:
    response = await server.http.post(
        "/api/rooms/direct", json={"user_id": other}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    return int(response.json()["room"]["id"])


async def send(client: EventClient, room: int, cid: str) -> Any:
    return await client.call("chat:message", {"room_id": room, "text": "hi", "client_msg_id": cid})


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fast_paths", [True, False])
async def test_numbers_move_with_traffic(tmp_path: Path, fast_paths: bool) -> None:
    overrides: dict[str, dict[str, Any]] = {
        "web": {"presence_grace": 0, "fast_paths": fast_paths},
        "auth": {"login_free_failures": 1, "login_base_delay": 30.0},
        "rate_limits": {"chat_burst": 5, "chat_rate": 0.01},
    }
    async with running_server(tmp_path / "d", overrides) as server:
        before = await scrape(server)
        for outcome in ("ok", "failed", "throttled", "invalid"):
            assert value(before, "appliance_logins_total", outcome=outcome) == 0
        assert value(before, "appliance_sockets_connected") == 0
        assert value(before, "appliance_service_up", service="database") == 1
        assert value(before, "appliance_service_up", service="store") == 0  # none running
        assert value(before, "appliance_service_up", service="recorder") == 0
        assert value(before, "process_resident_memory_bytes") > 0
        assert value(before, "process_cpu_seconds_total") >= 0

        alice_id = await server.add_user("alice")
        bob_id = await server.add_user("bob")
        alice_token = await server.token("alice")
        bob_token = await server.token("bob")
        wrong = await server.http.post(
            "/api/auth/login", json={"username": "alice", "password": PASSWORD + "x"}
        )
        assert wrong.status_code == 401
        throttled = await server.http.post(
            "/api/auth/login", json={"username": "alice", "password": PASSWORD}
        )
        assert throttled.status_code == 429
        malformed = await server.http.post("/api/auth/login", json={"username": "alice"})
        assert malformed.status_code == 400

        alice = await server.connect(alice_token)
        await alice.next("presence:list")
        bob = await server.connect(bob_token)
        await bob.next("presence:list")
        room = await direct_room(server, alice_token, bob_id)

        middle = await scrape(server)
        assert value(middle, "appliance_logins_total", outcome="ok") == 2
        assert value(middle, "appliance_logins_total", outcome="failed") == 1
        assert value(middle, "appliance_logins_total", outcome="throttled") == 1
        assert value(middle, "appliance_logins_total", outcome="invalid") == 1
        assert value(middle, "appliance_sockets_connected") == 2
        assert value(middle, "appliance_users_online") == 2

        acks = [await send(alice, room, f"m{i}") for i in range(6)]
        assert [a["ok"] for a in acks] == [True] * 5 + [False]
        assert acks[5]["error"]["code"] == "rate_limited"
        for _ in range(5):
            await bob.next("chat:message")
        repeat = await bob.call(
            "chat:message", {"room_id": room, "text": "again", "client_msg_id": "b1"}
        )
        assert repeat["ok"] is True
        assert (
            await bob.call("chat:message", {"room_id": room, "text": "x", "client_msg_id": "b1"})
        )["ok"]  # the same client_msg_id: answered again, stored once

        after = await scrape(server)
        assert value(after, "appliance_messages_stored_total") == 6
        assert value(after, "appliance_events_delivered_total", event="chat:message") == 6
        assert value(after, "appliance_chat_ack_seconds_count") == 8
        assert value(after, "appliance_chat_ack_seconds_sum") > 0
        assert value(after, "appliance_chat_ack_seconds_bucket", le="+Inf") == 8
        assert value(after, "appliance_write_batch_size_sum") == 7  # every write, repeats too
        assert 1 <= value(after, "appliance_write_batch_size_count") <= 7
        assert value(after, "appliance_rate_limited_total", event_class="chat") == 1

        # A call: rung, answered, hung up; then one that the callee rejects.
        started = await alice.call(
            "call:start", {"callee_id": bob_id, "media": {"audio": True, "video": False}}
        )
        call_id = started["call_id"]
        await bob.next("call:incoming")
        ringing = await scrape(server)
        assert value(ringing, "appliance_calls_active", state="ringing") == 1
        assert (await bob.call("call:accepted", {"call_id": call_id}))["ok"]
        active = await scrape(server)
        assert value(active, "appliance_calls_active", state="active") == 1
        assert value(active, "appliance_calls_active", state="ringing") == 0
        assert value(active, "appliance_call_setups_total", outcome="answered") == 1
        assert (await alice.call("call:end", {"call_id": call_id}))["ok"]
        second = await alice.call(
            "call:start", {"callee_id": bob_id, "media": {"audio": True, "video": True}}
        )
        await bob.next("call:incoming")
        assert (await bob.call("call:rejected", {"call_id": second["call_id"]}))["ok"]
        ended = await scrape(server)
        assert value(ended, "appliance_calls_active", state="active") == 0
        assert value(ended, "appliance_call_setups_total", outcome="rejected") == 1
        assert value(ended, "appliance_call_setups_total", outcome="answered") == 1

        await bob.close()
        await bob.disconnected.wait()
        gone = await scrape(server)
        assert value(gone, "appliance_sockets_connected") == 1
        assert value(gone, "appliance_users_online") == 1
        assert alice_id != bob_id


async def test_access_from_a_network_not_allowed_and_the_token(tmp_path: Path) -> None:
    overrides = {"metrics": {"allow_from": ["192.0.2.0/24"], "token": METRICS_TOKEN}}
    async with running_server(tmp_path / "d", overrides) as server:
        refused = await server.http.get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert METRICS_TOKEN not in refused.text
        for header in (
            f"Bearer {METRICS_TOKEN}x",
            f"Bearer {METRICS_TOKEN[:-1]}",
            f"Basic {METRICS_TOKEN}",
            METRICS_TOKEN,
            "Bearer",
            "Bearer " + "a" * 10_000,
            "Bearer \u00e9t\u00e9-" + METRICS_TOKEN,
        ):
            raw = [(b"Authorization", header.encode())]
            response = await server.http.get("/metrics", headers=raw)
            assert response.status_code == 403, header
        samples = await scrape(server, Authorization=f"Bearer {METRICS_TOKEN}")
        assert value(samples, "appliance_info", version=_version()) == 1
        lowercase = await server.http.get(
            "/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"}
        )
        assert lowercase.status_code == 200
        assert (await server.http.post("/metrics")).status_code == 405


async def test_forwarded_address_is_checked_and_token_off_by_default(tmp_path: Path) -> None:
    """Behind a trusted proxy the forwarded address decides. Only the header names another
    address; the traffic stays on loopback."""
    overrides = {"web": {"trust_forwarded_for": True}}
    async with running_server(tmp_path / "d", overrides) as server:
        far = await server.http.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
        assert far.status_code == 403
        near = await server.http.get("/metrics", headers={"X-Forwarded-For": "::1"})
        assert near.status_code == 200
        # No token configured: no bearer value opens it.
        empty = await server.http.get(
            "/metrics", headers={"X-Forwarded-For": "198.51.100.7", "Authorization": "Bearer"}
        )
        assert empty.status_code == 403


async def test_switched_off_is_not_found(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"metrics": {"enabled": False}}) as server:
        response = await server.http.get("/metrics")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_two_servers_in_one_process_keep_their_own_numbers(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path / "a") as first,
        running_server(tmp_path / "b") as second,
    ):
        await first.add_user("alice")
        await first.token("alice")
        assert value(await scrape(first), "appliance_logins_total", outcome="ok") == 1
        assert value(await scrape(second), "appliance_logins_total", outcome="ok") == 0


def test_access_rule() -> None:
    config = parse_config({"metrics": {"token": METRICS_TOKEN}}).metrics
    access = MetricsAccess(config)
    assert access.address_allowed("127.0.0.1")
    assert access.address_allowed("127.3.4.5")
    assert access.address_allowed("::1")
    assert access.address_allowed("::ffff:127.0.0.1")
    for address in ("192.0.2.1", "::2", "", "unknown", "localhost", "127.0.0.1:80"):
        assert not access.address_allowed(address), address
    assert access.token_allowed(f"Bearer {METRICS_TOKEN}")
    assert not access.token_allowed(f"Bearer {METRICS_TOKEN[:-1]}")
    assert not MetricsAccess(parse_config({}).metrics).token_allowed("Bearer ")


def test_bad_metrics_config_names_the_key() -> None:
    from appliance.errors import ConfigError

    with pytest.raises(ConfigError, match=r"metrics\.allow_from"):
        parse_config({"metrics": {"allow_from": ["not-a-network"]}})
    with pytest.raises(ConfigError, match=r"metrics\.token"):
        parse_config({"metrics": {"token": "short"}})
    with pytest.raises(ConfigError, match=r"logging\.format"):
        parse_config({"logging": {"format": "xml"}})


def test_login_outcomes() -> None:
    assert [login_outcome(s) for s in (200, 401, 403, 429, 400, 413)] == [
        "ok",
        "failed",
        "failed",
        "throttled",
        "invalid",
        "invalid",
    ]


def test_metrics_registries_are_separate() -> None:
    one, two = Metrics(process=False), Metrics(process=False)
    one.delivered("chat:message", 3)
    one.limited("chat")
    samples_one, samples_two = parse(one.render().decode()), parse(two.render().decode())
    assert value(samples_one, "appliance_events_delivered_total", event="chat:message") == 3
    assert ("appliance_events_delivered_total", frozenset({("event", "chat:message")})) not in (
        samples_two
    )


def _version() -> str:
    from appliance import __version__

    return __version__
