"""The box's own addresses, read from the kernel (iproute2); nothing is sent anywhere."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any


def _global_addr_info(*family: str) -> list[dict[str, Any]]:
    """`ip -j addr show scope global` (optionally `-4`/`-6`): every addr_info entry."""
    ip = shutil.which("ip")
    if ip is None:
        return []
    try:
        out = subprocess.run(
            [ip, "-j", *family, "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        interfaces = json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    return [info for interface in interfaces for info in interface.get("addr_info", [])]


def global_ipv4_addresses() -> list[str]:
    """IPv4 addresses of scope global, in the kernel's order."""
    return [
        str(info["local"])
        for info in _global_addr_info("-4")
        if info.get("family") == "inet" and "local" in info
    ]


def all_addresses() -> list[str]:
    """Every address the box can be reached by from its networks: IPv4 and IPv6 of scope global
    (so no loopback and no link-local), without IPv6 temporary (privacy) or deprecated addresses,
    which come and go every few hours."""
    found = [
        str(info["local"])
        for info in _global_addr_info()
        if info.get("family") in ("inet", "inet6")
        and "local" in info
        and not info.get("temporary")
        and not info.get("deprecated")
    ]
    return list(dict.fromkeys(found))


def primary_address() -> str:
    found = global_ipv4_addresses()
    return found[0] if found else "127.0.0.1"
