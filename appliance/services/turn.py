"""Ephemeral TURN credentials (the TURN REST API scheme coturn checks with `use-auth-secret`).

username = "<expiry unix time>:<user id>", credential = base64(HMAC-SHA1(secret, username)).
coturn recomputes the HMAC and refuses a username whose expiry has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from appliance.config import TurnConfig
from appliance.services.clock import Clock


def turn_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class TurnCredentialService:
    def __init__(
        self,
        config: TurnConfig,
        clock: Clock,
        *,
        force_relay: bool = False,
        tls: bool | None = None,
    ) -> None:
        """`tls`: whether coturn serves `turns:` (default: when turn.cert_file is set)."""
        self._config = config
        self._tls = bool(config.cert_file and config.key_file) if tls is None else tls
        self._clock = clock
        self._policy = "relay" if force_relay else "all"

    @property
    def ttl(self) -> int:
        return self._config.credential_ttl

    def ice_servers(self, user_id: int, request_host: str) -> dict[str, Any]:
        """`RTCConfiguration.iceServers` for a user, with the host they reached us by (unless a
        public host is configured)."""
        config = self._config
        host = _host_for_url(config.public_host or request_host)
        expiry = int(self._clock()) + config.credential_ttl
        username = f"{expiry}:{user_id}"
        urls = [
            f"turn:{host}:{config.port}?transport=udp",
            f"turn:{host}:{config.port}?transport=tcp",
        ]
        if self._tls:
            urls.append(f"turns:{host}:{config.tls_port}?transport=tcp")
        return {
            "iceServers": [
                {"urls": [f"stun:{host}:{config.port}"]},
                {
                    "urls": urls,
                    "username": username,
                    "credential": turn_credential(config.secret.get_secret_value(), username),
                },
            ],
            "iceTransportPolicy": self._policy,
            "ttl": config.credential_ttl,
            "expires_at": expiry,
        }
