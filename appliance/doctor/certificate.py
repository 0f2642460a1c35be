"""The web service's certificate (also coturn's `turns:`): valid now, its names, days left."""

from __future__ import annotations

import asyncio
from datetime import datetime
from urllib.parse import urlsplit

from appliance.adapters import certificates
from appliance.adapters.certificates import CertificateError
from appliance.doctor.model import Check, DoctorContext, fail, ok, skip, warn
from appliance.errors import ConfigError
from appliance.services.tls import TlsManager, utc_now

NAME = "certificate"


def _configured_names(context: DoctorContext) -> list[str]:
    """Names the admin told people to use: turn.public_host, the hosts of web.public_origins,
    and (mode internal) tls.extra_names."""
    config = context.settings.config
    names = [config.turn.public_host] if config.turn.public_host else []
    names += [urlsplit(o).hostname or "" for o in config.web.public_origins]
    if config.tls.mode == "internal":
        names += config.tls.extra_names
    return [n for n in dict.fromkeys(names) if n]


def _fix_for(mode: str) -> str:
    if mode == "internal":
        return (
            "Restart the web service: it issues a new certificate from the box's own CA for "
            "every current name and address."
        )
    return "Renew the certificate (certbot renew) or upload a current one in tls.cert_file."


async def check_certificate(context: DoctorContext) -> list[Check]:
    return [await asyncio.to_thread(_check, context, utc_now())]


def _check(context: DoctorContext, now: datetime) -> Check:
    config = context.settings.config
    if config.web.https_port == 0:
        return skip(NAME, "HTTPS is off (web.https_port = 0)")
    try:
        manager = TlsManager(context.settings)
    except ConfigError as exc:
        return fail(NAME, str(exc), "Set tls.cert_file and tls.key_file, or tls.mode = internal.")
    fix = _fix_for(manager.mode)
    try:
        cert_pem = manager.cert_path.read_bytes()
        key_pem = manager.key_path.read_bytes()
    except OSError:
        return fail(NAME, f"cannot read {manager.cert_path} or its key", fix)
    try:
        leaf = certificates.load_chain(cert_pem)[0]
    except CertificateError as exc:
        return fail(NAME, str(exc), fix)
    info = certificates.describe(leaf)
    if info.not_after <= now:
        return fail(NAME, f"expired on {info.not_after:%Y-%m-%d %H:%M} UTC", fix)
    if info.not_before > now:
        return fail(
            NAME,
            f"not valid before {info.not_before:%Y-%m-%d %H:%M} UTC",
            "Check the box's clock (see the clock line), then " + fix[0].lower() + fix[1:],
        )
    try:
        certificates.validate_pair(cert_pem, key_pem, now=now)
    except CertificateError as exc:
        return fail(NAME, str(exc), fix)
    configured = _configured_names(context)
    missing = [n for n in configured if not certificates.covers(leaf, n)]
    if missing:
        return fail(
            NAME,
            f"does not cover {', '.join(missing)} (it covers {_names(info.names) or 'no names'})",
            fix
            if manager.mode == "internal"
            else "Get a certificate that names " + ", ".join(missing) + ".",
        )
    if manager.mode == "internal":
        detected = [n for n in manager.wanted_names() if not certificates.covers(leaf, n)]
        if detected:
            return warn(
                NAME,
                f"does not cover {', '.join(detected)} yet (a new name or address of the box)",
                fix,
            )
    days = (info.not_after - now).days
    if days < config.tls.renew_before_days:
        return warn(NAME, f"expires in {days} day(s), on {info.not_after:%Y-%m-%d}", fix)
    return ok(NAME, f"valid for {days} more days; covers {_names(info.names)}")


def _names(names: tuple[str, ...], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
