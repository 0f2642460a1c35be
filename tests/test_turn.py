"""TURN: rendered coturn config, REST credentials, a real coturn refusing what it must."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from appliance.adapters import coturn, stun_probe
from appliance.config import TurnConfig
from appliance.services.turn import TurnCredentialService
from tests.support import RunningServer, running_server
from tests.test_cli import free_port
from tests.turn_support import running_turn, turn_overrides


def render(**changes: Any) -> str:
    version = changes.pop("version", (4, 6, 1))
    external = changes.pop("external_ip", None)
    config = TurnConfig(secret=SecretStr("s3cret"), **changes)
    return coturn.render_config(
        config,
        relay_ip="192.0.2.10",
        external_ip=external,
        version=version,
        pid_file=Path("/run/t.pid"),
        userdb=Path("/var/lib/appliance/turn/turndb"),
    )


def test_rendered_config_is_hardened() -> None:
    text = render()
    lines = set(text.splitlines())
    for line in (
        "use-auth-secret",
        "static-auth-secret=s3cret",
        "realm=appliance",
        "listening-port=3478",
        "fingerprint",
        "no-cli",
        "no-multicast-peers",
        "no-tcp-relay",
        "no-software-attribute",
        "stale-nonce=600",
        "user-quota=12",
        "total-quota=1200",
        "min-port=49160",
        "max-port=49200",
        "relay-ip=192.0.2.10",
        "allowed-peer-ip=192.0.2.10-192.0.2.10",
    ):
        assert line in lines, line
    denied = [ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith("denied-peer-ip=")]
    for needed in (
        "127.0.0.0-127.255.255.255",
        "10.0.0.0-10.255.255.255",
        "172.16.0.0-172.31.255.255",
        "192.168.0.0-192.168.255.255",
        "169.254.0.0-169.254.255.255",
        "100.64.0.0-100.127.255.255",
        "224.0.0.0-239.255.255.255",
        "240.0.0.0-255.255.255.255",
        "0.0.0.0-0.255.255.255",
        "::1-::1",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        coturn.DENIED_IPV4_MAPPED,
    ):
        assert needed in denied, needed
    assert "allow-loopback-peers" not in lines
    assert "no-tls" in lines  # no certificate configured


def test_ipv4_mapped_range_only_for_old_coturn() -> None:
    assert coturn.DENIED_IPV4_MAPPED in render(version=(4, 8, 0))
    assert coturn.DENIED_IPV4_MAPPED in render(version=None)
    assert coturn.DENIED_IPV4_MAPPED not in render(version=(4, 9, 0))


def test_tls_and_external_ip() -> None:
    text = render(cert_file="/etc/c.pem", key_file="/etc/k.pem", external_ip="203.0.113.7")
    assert "tls-listening-port=5349" in text
    assert "cert=/etc/c.pem" in text and "pkey=/etc/k.pem" in text
    assert "no-tls\n" not in text
    assert "external-ip=203.0.113.7/192.0.2.10" in text
    assert "allowed-peer-ip=203.0.113.7-203.0.113.7" in text


def test_bad_turn_config_refused() -> None:
    with pytest.raises(ValueError, match="min_port"):
        render(min_port=50000, max_port=40000)
    with pytest.raises(ValueError, match="secret"):
        coturn.render_config(
            TurnConfig(),
            relay_ip="1.2.3.4",
            external_ip=None,
            version=None,
            pid_file=Path("p"),
            userdb=Path("u"),
        )


def test_credentials_recomputed_independently() -> None:
    config = TurnConfig(secret=SecretStr("topsecret"), credential_ttl=600)
    answer = TurnCredentialService(config, lambda: 1_000_000.0).ice_servers(42, "chat.local")
    stun_entry, turn_entry = answer["iceServers"]
    assert stun_entry == {"urls": ["stun:chat.local:3478"]}
    assert turn_entry["username"] == "1000600:42"
    expected = base64.b64encode(
        hmac.new(b"topsecret", b"1000600:42", hashlib.sha1).digest()
    ).decode()
    assert turn_entry["credential"] == expected
    assert turn_entry["urls"] == [
        "turn:chat.local:3478?transport=udp",
        "turn:chat.local:3478?transport=tcp",
    ]
    assert answer["ttl"] == 600
    assert answer["iceTransportPolicy"] == "all"
    forced = TurnCredentialService(config, time.time, force_relay=True).ice_servers(1, "h")
    assert forced["iceTransportPolicy"] == "relay"
    tls = TurnCredentialService(
        TurnConfig(secret=SecretStr("x"), cert_file="c", key_file="k"), time.time
    ).ice_servers(1, "::1")
    assert "turns:[::1]:5349?transport=tcp" in tls["iceServers"][1]["urls"]


def test_stun_server_parsing() -> None:
    assert stun_probe.parse_server("stun:example.org:19302") == ("example.org", 19302)
    assert stun_probe.parse_server("example.org") == ("example.org", 3478)
    assert stun_probe.parse_server("[::1]:3479") == ("::1", 3479)
    assert stun_probe.parse_server("::1") == ("::1", 3478)


def uclient(port: int, peer_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "turnutils_uclient",
            "-p",
            str(port),
            "-e",
            "127.0.0.1",
            "-r",
            str(peer_port),
            "-n",
            "3",
            "-m",
            "1",
            "-l",
            "100",
            *args,
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def echo_peer() -> Any:
    port = free_port()
    peer = subprocess.Popen(
        ["turnutils_peer", "-L", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield port
    peer.terminate()
    peer.wait(timeout=10)


async def api_credentials(server: RunningServer) -> dict[str, Any]:
    await server.add_user("alice")
    token = await server.token("alice")
    response = await server.http.get("/api/turn", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.timeout(120)
async def test_allocation_with_api_credentials(turn_server: RunningServer, echo_peer: int) -> None:
    body = await api_credentials(turn_server)
    entry = body["iceServers"][1]
    assert entry["username"].endswith(":1")
    secret = turn_server.settings.config.turn.secret.get_secret_value()
    assert (
        entry["credential"]
        == base64.b64encode(
            hmac.new(secret.encode(), entry["username"].encode(), hashlib.sha1).digest()
        ).decode()
    )
    port = turn_server.settings.config.turn.port
    assert entry["urls"][0] == f"turn:127.0.0.1:{port}?transport=udp"
    result = uclient(port, echo_peer, "-u", entry["username"], "-w", entry["credential"])
    assert result.returncode == 0, result.stdout
    totals = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", result.stdout)
    assert totals, result.stdout
    sent, received = (int(n) for n in totals[-1])
    assert sent == received > 0  # every message came back through the relay
    assert "Total lost packets 0" in result.stdout
    health = (await turn_server.http.get("/healthz")).json()
    assert health["services"]["turn"]["state"] == "up"
    assert health["services"]["store"]["state"] == "down"  # no store beside this test


@pytest.mark.timeout(120)
async def test_expired_tampered_and_missing_credentials_refused(
    turn_server: RunningServer, echo_peer: int
) -> None:
    body = await api_credentials(turn_server)
    entry = body["iceServers"][1]
    port = turn_server.settings.config.turn.port
    secret = turn_server.settings.config.turn.secret.get_secret_value()
    expired_user = f"{int(time.time()) - 60}:1"
    expired_pass = base64.b64encode(
        hmac.new(secret.encode(), expired_user.encode(), hashlib.sha1).digest()
    ).decode()
    tampered = entry["credential"][:-4] + (
        "AAA=" if not entry["credential"].endswith("AAA=") else "BBB="
    )
    other_user = entry["username"].replace(":1", ":2")
    for args in (
        ["-u", expired_user, "-w", expired_pass],
        ["-u", entry["username"], "-w", tampered],
        ["-u", other_user, "-w", entry["credential"]],
        [],
    ):
        result = uclient(port, echo_peer, *args)
        assert result.returncode != 0, args
        assert "Cannot complete Allocation" in result.stdout + result.stderr, args


@pytest.mark.timeout(120)
async def test_production_config_refuses_loopback_peers_and_tcp_relay(
    tmp_path: Path, echo_peer: int
) -> None:
    overrides = {"turn": turn_overrides(allow_loopback_peers=False)}
    async with running_server(tmp_path / "d", overrides) as server:
        rendered = await server_conf(server)
        assert "allow-loopback-peers" not in rendered
        async with running_turn(server.settings):
            entry = (await api_credentials(server))["iceServers"][1]
            port = server.settings.config.turn.port
            creds = ["-u", entry["username"], "-w", entry["credential"]]
            ssrf = uclient(port, echo_peer, *creds)
            assert ssrf.returncode != 0
            assert "403" in ssrf.stdout + ssrf.stderr  # Forbidden IP
            tcp = uclient(port, echo_peer, "-T", *creds)
            assert tcp.returncode != 0
            assert "442" in tcp.stdout + tcp.stderr  # TCP relay not allowed


async def server_conf(server: RunningServer) -> str:
    from appliance.services.turnserver import conf_path, prepare

    await prepare(server.settings)
    path = conf_path(server.settings.data_dir)
    assert path.stat().st_mode & 0o777 == 0o600
    return path.read_text()


async def test_stun_probe_against_local_coturn(turn_server: RunningServer) -> None:
    port = turn_server.settings.config.turn.port
    found = await stun_probe.probe([f"127.0.0.1:{port}"], source_ip="127.0.0.1", wait=0.3)
    assert found is not None
    assert found.external_ip == "127.0.0.1"
    assert found.nat_type  # a classification string
    assert await stun_probe.binding(f"127.0.0.1:{port}") is not None
    assert await stun_probe.alive("127.0.0.1", port)
    assert not await stun_probe.alive("127.0.0.1", free_port(), wait=0.2)
    # Nobody listening: no answer, no crash.
    assert await stun_probe.probe([f"127.0.0.1:{free_port()}"], wait=0.2) is None


async def test_turn_credentials_need_auth(server: RunningServer) -> None:
    response = await server.http.get("/api/turn")
    assert response.status_code == 401
