"""The box's own addresses, read from the kernel (iproute2); nothing is sent anywhere."""

from __future__ import annotations

import json
import shutil
import subprocess


def global_ipv4_addresses() -> list[str]:
    """IPv4 addresses of scope global, in the kernel's order."""
    ip = shutil.which("ip")
    if ip is None:
        return []
    try:
        out = subprocess.run(
            [ip, "-j", "-4", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        interfaces = json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    return [
        str(info["local"])
        for interface in interfaces
        for info in interface.get("addr_info", [])
        if info.get("family") == "inet" and "local" in info
    ]


def primary_address() -> str:
    found = global_ipv4_addresses()
    return found[0] if found else "127.0.0.1"
