"""coturn, managed: its config file rendered from ours, and the command that runs it.

The rendered file allows only ephemeral REST-API credentials, relays UDP only, and refuses to relay
to loopback, private, link-local, CGNAT, multicast and reserved addresses (so the relay cannot be
used to reach the box's own services or the LAN: the TURN SSRF problem), except the box's own
relay address, so that client -> TURN -> TURN -> client still works.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from appliance.config import TurnConfig

# Ranges a relay must never reach (RFC 6890 special-purpose registries and friends).
DENIED_IPV4 = [
    "0.0.0.0-0.255.255.255",  # "this network"
    "10.0.0.0-10.255.255.255",  # private
    "100.64.0.0-100.127.255.255",  # CGNAT shared space
    "127.0.0.0-127.255.255.255",  # loopback
    "169.254.0.0-169.254.255.255",  # link-local
    "172.16.0.0-172.31.255.255",  # private
    "192.0.0.0-192.0.0.255",  # IETF protocol assignments
    "192.0.2.0-192.0.2.255",  # TEST-NET-1
    "192.88.99.0-192.88.99.255",  # 6to4 relay anycast
    "192.168.0.0-192.168.255.255",  # private
    "198.18.0.0-198.19.255.255",  # benchmarking
    "198.51.100.0-198.51.100.255",  # TEST-NET-2
    "203.0.113.0-203.0.113.255",  # TEST-NET-3
    "224.0.0.0-239.255.255.255",  # multicast
    "240.0.0.0-255.255.255.255",  # reserved and broadcast
]
DENIED_IPV6 = [
    "::-::",  # unspecified
    "::1-::1",  # loopback
    "64:ff9b::-64:ff9b::ffff:ffff",  # NAT64
    "100::-100::ffff:ffff:ffff:ffff",  # discard-only
    "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",  # IETF protocol assignments
    "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",  # documentation
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # unique local
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # link-local
    "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # multicast
]
# coturn before 4.9 did not map IPv4-mapped IPv6 peers onto the IPv4 deny list (CVE-2026-27624).
DENIED_IPV4_MAPPED = "::ffff:0.0.0.0-::ffff:255.255.255.255"
LOOPBACK = ["127.0.0.0-127.255.255.255", "::1-::1"]


def coturn_version(binary: str = "turnserver") -> tuple[int, ...] | None:
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out.stdout + out.stderr)
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def render_config(
    config: TurnConfig,
    *,
    relay_ip: str,
    external_ip: str | None,
    version: tuple[int, ...] | None,
    pid_file: Path,
    userdb: Path,
    tls: tuple[Path, Path] | None = None,
) -> str:
    """The turnserver.conf for our config. `relay_ip` is the box's own address for relays.

    `tls`: (certificate chain, key) for `turns:` on turn.tls_port; by default turn.cert_file and
    turn.key_file when both are set. Without either, coturn serves no TLS or DTLS."""
    secret = config.secret.get_secret_value()
    if not secret:
        raise ValueError("turn.secret is empty")
    if config.min_port > config.max_port:
        raise ValueError("turn.min_port must not exceed turn.max_port")
    lines = [
        "# Rendered by `appliance turn` from appliance.toml. Do not edit: change [turn] instead.",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={config.realm}",
        f"listening-port={config.port}",
        *(f"listening-ip={ip}" for ip in config.listen_ips),
        f"relay-ip={relay_ip}",
        f"min-port={config.min_port}",
        f"max-port={config.max_port}",
        "fingerprint",
        "no-cli",
        "no-multicast-peers",
        "no-tcp-relay",
        "no-software-attribute",
        "no-rfc5780",
        "stale-nonce=600",
        f"user-quota={config.user_quota}",
        f"total-quota={config.total_quota}",
        "log-file=stdout",
        "simple-log",
        f"pidfile={pid_file}",
        f"userdb={userdb}",  # unused with use-auth-secret, but coturn opens one
    ]
    if external_ip and external_ip != relay_ip:
        lines.append(f"external-ip={external_ip}/{relay_ip}")
    if tls is None and config.cert_file and config.key_file:
        tls = (Path(config.cert_file), Path(config.key_file))
    if tls is not None:
        # coturn re-reads these files on SIGUSR2 (`appliance turn` sends it on a change).
        lines += [
            f"tls-listening-port={config.tls_port}",
            f"cert={tls[0]}",
            f"pkey={tls[1]}",
            "no-tlsv1",
            "no-tlsv1_1",
            "no-dtls",  # WebRTC clients use turns: over TCP only
        ]
    else:
        lines += ["no-tls", "no-dtls"]
    denied = list(DENIED_IPV4) + list(DENIED_IPV6)
    if version is None or version < (4, 9):
        denied.append(DENIED_IPV4_MAPPED)
    lines += [f"denied-peer-ip={r}" for r in denied]
    allowed = [f"{relay_ip}-{relay_ip}"]
    if external_ip:
        allowed.append(f"{external_ip}-{external_ip}")
    if config.allow_loopback_peers:
        # Test-only switch: the suite's peers all live on loopback.
        lines.append("allow-loopback-peers")
        allowed += LOOPBACK
    lines += [f"allowed-peer-ip={r}" for r in dict.fromkeys(allowed)]
    return "\n".join(lines) + "\n"
