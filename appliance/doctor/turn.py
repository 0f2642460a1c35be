"""TURN and STUN.

TURN: an allocation on the running coturn with fresh REST credentials from the turn credential
service, then the SSRF guard: a CreatePermission for 127.0.0.1 must be refused (403), then the
allocation is given back (Refresh, lifetime 0). The client is aioice's (`aioice.turn`, already
installed with aiortc): its public `connect()`, `request_with_retry()` and `delete()` do the
long-term-credential dance; CreatePermission is one more request built with its `stun.Message`.

STUN: the box's public address and NAT type through pystun3 (appliance/adapters/stun_probe.py),
only when turn.stun_servers is configured.
"""

from __future__ import annotations

import asyncio
import contextlib

from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from appliance.adapters import stun_probe
from appliance.doctor.model import Check, DoctorContext, fail, ok, skip, warn
from appliance.services.clock import wall_clock
from appliance.services.turn import TurnCredentialService

NAME = "turn"
GUARD_PEER = ("127.0.0.1", 9)
ALLOCATION_LIFETIME = 60
STUN_WAITS = 18  # a binding (at most 5 waits) and a NAT type test (at most 12) per server
START_FIX = (
    "Start the turn service (systemctl start appliance-turn, or appliance up) and look at its "
    "log; check that turn.port is not taken by another program."
)


def turn_address(context: DoctorContext) -> tuple[str, int]:
    """Where coturn listens: its first listen IP (loopback for a wildcard), else 127.0.0.1."""
    config = context.settings.config.turn
    host = next(iter(config.listen_ips), "127.0.0.1")
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard listener answers on loopback
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
    return host, config.port


def _error(exc: stun.TransactionFailed) -> tuple[int, str]:
    code, reason = exc.response.attributes.get("ERROR-CODE", (0, ""))
    return int(code), str(reason)


async def check_turn(context: DoctorContext) -> list[Check]:
    config = context.settings.config.turn
    if not config.secret.get_secret_value():
        return [fail(NAME, "turn.secret is empty", "Run appliance init, or set turn.secret.")]
    server = turn_address(context)
    shown = f"[{server[0]}]:{server[1]}" if ":" in server[0] else f"{server[0]}:{server[1]}"
    if not await stun_probe.alive(*server, wait=1.0):
        return [fail(NAME, f"coturn does not answer at {shown}", START_FIX)]
    entry = TurnCredentialService(config, wall_clock).ice_servers(0, server[0])["iceServers"][1]
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            server,
            entry["username"],
            entry["credential"],
            lifetime=ALLOCATION_LIFETIME,
            channel_refresh_time=ALLOCATION_LIFETIME,
        ),
        remote_addr=server,
    )
    try:
        try:
            relayed = await protocol.connect()
        except stun.TransactionFailed as exc:
            code, reason = _error(exc)
            if code == 401:
                return [
                    fail(
                        NAME,
                        f"coturn at {shown} refused fresh credentials (401 {reason})",
                        "coturn runs with another secret than turn.secret: restart the turn "
                        "service so it renders its config again; check the box's clock.",
                    )
                ]
            return [fail(NAME, f"allocation refused ({code} {reason})", START_FIX)]
        guard = await _guard(protocol)
        with contextlib.suppress(stun.TransactionError, ConnectionError):
            await protocol.delete()  # Refresh with lifetime 0
    except stun.TransactionTimeout:
        return [fail(NAME, f"coturn at {shown} stopped answering", START_FIX)]
    finally:
        if protocol.refresh_task is not None:  # cut short (a timeout) before delete()
            protocol.refresh_task.cancel()
        transport.close()
    relay = f"{relayed[0]}:{relayed[1]}"
    return [_verdict(guard, relay, config.allow_loopback_peers)]


async def _guard(protocol: TurnClientUdpProtocol) -> int | None:
    """The error code of a CreatePermission for 127.0.0.1, None if it was granted."""
    request = stun.Message(
        message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
    )
    request.attributes["XOR-PEER-ADDRESS"] = GUARD_PEER
    try:
        await protocol.request_with_retry(request)
    except stun.TransactionFailed as exc:
        return _error(exc)[0]
    return None


def _verdict(refused_with: int | None, relay: str, allow_loopback: bool) -> Check:
    allocated = f"allocation OK (relay {relay})"
    if allow_loopback:
        return warn(
            NAME,
            f"{allocated}; the SSRF guard is OFF: turn.allow_loopback_peers = true"
            + ("" if refused_with is None else " (coturn still runs an older config)"),
            "Set turn.allow_loopback_peers = false (a switch for tests only) and restart the "
            "turn service: otherwise anyone with credentials can reach the box's own services "
            "through the relay.",
        )
    if refused_with is None:
        return fail(
            NAME,
            f"{allocated}, but a relay permission to 127.0.0.1 was GRANTED: the SSRF guard "
            "is not working",
            "coturn is not running with the config the appliance renders: stop any other "
            "coturn (systemctl disable --now coturn) and restart the turn service.",
        )
    return ok(NAME, f"{allocated}; a relay permission to 127.0.0.1 is refused ({refused_with})")


async def check_stun(context: DoctorContext) -> list[Check]:
    config = context.settings.config.turn
    if not config.stun_servers:
        return [skip("stun", "no STUN servers configured (turn.stun_servers)")]
    budget = context.settings.config.doctor.check_timeout * 0.8
    # Servers that ignore RFC 3489's change requests (most, coturn too) make the NAT type test
    # wait for its deadline (12 waits): keep the whole probe inside the check's time.
    wait = min(config.stun_timeout, budget / STUN_WAITS)
    try:
        async with asyncio.timeout(budget):
            found = await stun_probe.probe(config.stun_servers, wait=wait)
    except TimeoutError:
        found = None
    if found is None or not found.external_ip:
        return [
            warn(
                "stun",
                f"no answer from {', '.join(config.stun_servers)}",
                "Calls from outside the network may fail: check the STUN servers in "
                "turn.stun_servers and that the firewall lets UDP out; or set turn.external_ip.",
            )
        ]
    return [
        ok(
            "stun",
            f"public address {found.external_ip}:{found.external_port}, NAT type "
            f"{found.nat_type} (from {found.server})",
        )
    ]
