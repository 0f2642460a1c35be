"""Who may read `/metrics`: a client address in `metrics.allow_from`, or the metrics token."""

from __future__ import annotations

import hmac
import ipaddress

from appliance.config import MetricsConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


class MetricsAccess:
    def __init__(self, config: MetricsConfig) -> None:
        self.enabled = config.enabled
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in config.allow_from
        )
        token = config.token.get_secret_value()
        self._token = token.encode() if token else None

    def address_allowed(self, client: str) -> bool:
        address = _address(client)
        if address is None:
            return False
        return any(address in network for network in self._networks)

    def token_allowed(self, authorization: str) -> bool:
        """`Authorization: Bearer <metrics.token>`, compared in constant time."""
        if self._token is None:
            return False
        scheme, _, offered = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(offered.strip().encode("utf-8", "replace"), self._token)

    def allowed(self, client: str, authorization: str) -> bool:
        return self.address_allowed(client) or self.token_allowed(authorization)
