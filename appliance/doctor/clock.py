"""The clock: its offset from an NTP server, with a small SNTP client (RFC 4330): one UDP request,
one answer. Only `[doctor] ntp_server` is asked; with none configured nothing is sent."""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

from appliance.doctor.model import Check, DoctorContext, fail, ok, skip, warn

NAME = "clock"
NTP_PORT = 123
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!BBbb11I")  # 48 bytes: flags, stratum, poll, precision, 11 words
CLIENT_FLAGS = (0 << 6) | (4 << 3) | 3  # no leap warning, version 4, mode 3 (client)
FIX = (
    "Set the clock right: enable time sync (timedatectl set-ntp true, or systemd-timesyncd / "
    "chrony) and check the NTP server. A wrong clock breaks logins, TURN credentials and "
    "certificates."
)


class NtpError(Exception):
    """No usable answer."""


@dataclass(frozen=True, slots=True)
class NtpAnswer:
    offset: float  # seconds the server's clock is ahead of ours
    delay: float  # round trip, seconds
    stratum: int


def parse_server(server: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address; port 123 by default."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest.removeprefix(":")
    elif server.count(":") == 1:
        host, _, port = server.partition(":")
    else:
        host, port = server, ""
    number = int(port) if port else NTP_PORT
    if not host or not 0 < number < 65536:
        raise ValueError(f"bad NTP server {server!r}")
    return host, number


def to_ntp(unix: float) -> tuple[int, int]:
    seconds = unix + NTP_EPOCH_OFFSET
    whole = int(seconds)
    return whole & 0xFFFFFFFF, int((seconds - whole) * 2**32) & 0xFFFFFFFF


def from_ntp(whole: int, fraction: int) -> float:
    return whole - NTP_EPOCH_OFFSET + fraction / 2**32


def request_packet(transmit: tuple[int, int]) -> bytes:
    return PACKET.pack(CLIENT_FLAGS, 0, 0, 0, *([0] * 9), *transmit)


def read_answer(data: bytes, sent: tuple[int, int], t1: float, t4: float) -> NtpAnswer:
    if len(data) < PACKET.size:
        raise NtpError("short answer")
    flags, stratum, _, _, *words = PACKET.unpack_from(data)
    if flags & 0x07 not in (4, 5):  # server or broadcast
        raise NtpError("not a server answer")
    if (flags >> 6) == 3 or stratum == 0:
        raise NtpError("the server is not synchronised (or sent a kiss-of-death)")
    if (words[5], words[6]) != sent:  # origin timestamp: the answer to our own request
        raise NtpError("answer to another request")
    t2 = from_ntp(words[7], words[8])
    t3 = from_ntp(words[9], words[10])
    offset = ((t2 - t1) + (t3 - t4)) / 2
    delay = (t4 - t1) - (t3 - t2)
    return NtpAnswer(offset, delay, stratum)


class _Exchange(asyncio.DatagramProtocol):
    def __init__(self, answer: asyncio.Future[tuple[bytes, float]]) -> None:
        self._answer = answer

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self._answer.done():
            self._answer.set_result((data, time.time()))

    def error_received(self, exc: Exception) -> None:
        if not self._answer.done():
            self._answer.set_exception(NtpError(type(exc).__name__))


async def query(server: str, *, wait: float) -> NtpAnswer:
    """One SNTP exchange with `server` (host[:port]); NtpError or TimeoutError."""
    host, port = parse_server(server)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[tuple[bytes, float]] = loop.create_future()
    async with asyncio.timeout(wait):
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Exchange(answer), remote_addr=(host, port)
        )
        try:
            t1 = time.time()
            # The low bits of the fraction are below the clock's resolution: random ones make
            # the origin timestamp unguessable for anyone spoofing answers.
            whole, fraction = to_ntp(t1)
            sent = (whole, (fraction & ~0xFFFF) | secrets.randbits(16))
            transport.sendto(request_packet(sent))
            data, t4 = await answer
        finally:
            transport.close()
    return read_answer(data, sent, t1, t4)


async def check_clock(context: DoctorContext) -> list[Check]:
    config = context.settings.config.doctor
    if not config.ntp_server:
        return [skip(NAME, "no NTP server configured (doctor.ntp_server)")]
    try:
        found = await query(config.ntp_server, wait=min(3.0, config.check_timeout))
    except (NtpError, OSError, TimeoutError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        return [
            warn(
                NAME,
                f"no usable answer from {config.ntp_server} ({reason})",
                "Check doctor.ntp_server and that the firewall lets UDP port 123 out.",
            )
        ]
    offset = abs(found.offset)
    direction = "behind" if found.offset > 0 else "ahead of"
    summary = f"{offset:.3f} s {direction} {config.ntp_server} (stratum {found.stratum})"
    if offset >= config.clock_fail_seconds:
        return [fail(NAME, summary, FIX)]
    if offset >= config.clock_warn_seconds:
        return [warn(NAME, summary, FIX)]
    return [ok(NAME, summary)]
