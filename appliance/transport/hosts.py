"""Host names from requests: the Host header's host part, and the box's HTTPS URL for it."""

from __future__ import annotations

import ipaddress
import re

_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def host_of(value: str) -> str | None:
    """The host part of a Host header (`[v6]` kept in brackets), or None unless it is a plain
    DNS name or IP address: nothing else may end up in a URL we build from it."""
    value = value.strip()
    if value.startswith("["):
        inner, sep, rest = value[1:].partition("]")
        if not sep or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        try:
            return f"[{ipaddress.IPv6Address(inner)}]"
        except ValueError:
            return None
    host, sep, port = value.rpartition(":") if value.count(":") == 1 else ("", "", "")
    if not sep:
        host = value
    elif not re.fullmatch(r"\d{1,5}", port):
        return None
    return host.lower() if _HOST_NAME.fullmatch(host) else None


def https_base(host: str, https_port: int) -> str:
    """`https://host[:port]` (the port left out when it is 443)."""
    return f"https://{host}" + ("" if https_port == 443 else f":{https_port}")
