"""The first-run set-up wizard: the one-time token, each step's checks, and finishing.

Set-up is pending while the config's `setup.token` is non-empty. Every wizard request presents
that token (compared in constant time; wrong guesses are throttled per client address like
logins). Finishing checks every step again, creates the first admin, writes the config
atomically with the token cleared, deletes the token file and asks the supervisor to restart
what needs it. From then on the wizard answers 404, in this process and after any restart.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import ipaddress
import logging
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from appliance import bootstrap
from appliance.adapters import certificates, netinfo, s3_check, stun_probe
from appliance.config import Settings
from appliance.errors import AppError, ConfigError, ErrorCode
from appliance.services.auth import USERNAME_PATTERN, AuthService
from appliance.services.clock import Clock
from appliance.services.passwords import PasswordService
from appliance.services.throttle import LoginThrottle, MemoryAttemptStore
from appliance.storage.users import UserRepository
from appliance.supervision.restart import Restarter, RestartPlan, describe, from_environment

log = logging.getLogger(__name__)

Step = Literal["organisation", "admin", "reach", "tls", "turn", "storage", "recording"]
STEPS: tuple[Step, ...] = ("organisation", "admin", "reach", "tls", "turn", "storage", "recording")
ORGANISATION_MAX = 80
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
STUN_CACHE_SECONDS = 60.0
MAX_EXTRA_NAMES = 32

# -- what the wizard sends ----------------------------------------------------------------------


class StepModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrganisationStep(StepModel):
    name: str = Field(max_length=200)


class AdminStep(StepModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class ReachStep(StepModel):
    share_name: str = Field(max_length=253, description="the name in the URL people are given")
    extra_names: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=MAX_EXTRA_NAMES
    )


class TlsStep(StepModel):
    mode: Literal["internal", "upload"]
    cert_pem: str = Field(default="", max_length=40_000)
    key_pem: str = Field(default="", max_length=16_000)


class TurnStep(StepModel):
    port: int | None
    tls_port: int | None
    min_port: int | None
    max_port: int | None


class StorageStep(StepModel):
    mode: Literal["managed", "external"]
    endpoint: str = Field(default="", max_length=2048)
    bucket: str = Field(default="", max_length=100)
    region: str = Field(default="", max_length=64)
    access_key: str = Field(default="", max_length=256)
    secret_key: str = Field(default="", max_length=256)


class RecordingStep(StepModel):
    enabled: bool
    retention_days: int | None


class SetupDraft(StepModel):
    """The steps filled in so far (for checking one step in the context of the others)."""

    organisation: OrganisationStep | None = None
    admin: AdminStep | None = None
    reach: ReachStep | None = None
    tls: TlsStep | None = None
    turn: TurnStep | None = None
    storage: StorageStep | None = None
    recording: RecordingStep | None = None


class SetupPlan(StepModel):
    """Every step: what `finish` applies."""

    organisation: OrganisationStep
    admin: AdminStep
    reach: ReachStep
    tls: TlsStep
    turn: TurnStep
    storage: StorageStep
    recording: RecordingStep


# -- what the wizard gets back --------------------------------------------------------------------


class SiteInfo(BaseModel):
    name: str
    setup_pending: bool
    recording_enabled: bool
    password_min_length: int


class FirewallRule(BaseModel):
    ports: str
    protocol: str
    purpose: str


class CertificateSummary(BaseModel):
    names: list[str]
    not_after: str
    issuer: str
    self_signed: bool


class StepReport(BaseModel):
    ok: bool = True
    firewall: list[FirewallRule] | None = None
    certificate: CertificateSummary | None = None


class WebPorts(BaseModel):
    port: int
    https_port: int


class Environment(BaseModel):
    hostname: str
    mdns_name: str
    addresses: list[str]
    covered_names: list[str] = Field(description="names the appliance's own certificate covers")
    share_names: list[str] = Field(description="names to choose from for the URL to share")
    web: WebPorts
    stun_configured: bool
    password_min_length: int
    defaults: SetupDraft = Field(description="the current config, to pre-fill each step")


NeedsRelay = Literal["no", "sometimes", "yes", "unknown"]


class StunReport(BaseModel):
    configured: bool
    servers: list[str]
    public_address: str | None = None
    public_port: int | None = None
    nat_type: str | None = None
    needs_relay: NeedsRelay
    verdict: str


class FinishResult(BaseModel):
    url: str
    trust_url: str
    qr_svg: str
    firewall: list[FirewallRule]
    restart: str
    next_step: str


# -- plain-language verdicts on the STUN probe ----------------------------------------------------

BLOCKED = "Blocked"
# Keys: pystun3's NAT type names (its spelling).

_NAT_VERDICTS: dict[str, tuple[NeedsRelay, str]] = {
    "Open Internet": (
        "no",
        "This box has a public address of its own. Calls between networks can connect "
        "directly; the TURN relay is only a fallback.",
    ),
    "Full Cone": (
        "sometimes",
        "This box is behind a friendly NAT. Most calls between networks connect directly; "
        "some (for example from mobile networks or strict company networks) will use the TURN "
        "relay, so forward the TURN ports below to this box.",
    ),
    "Restric NAT": (
        "sometimes",
        "This box is behind a NAT that allows most direct calls. Calls from strict networks "
        "will use the TURN relay, so forward the TURN ports below to this box.",
    ),
    "Restric Port NAT": (
        "sometimes",
        "This box is behind a NAT that allows many direct calls. Calls from strict networks "
        "will use the TURN relay, so forward the TURN ports below to this box.",
    ),
    "Symmetric NAT": (
        "yes",
        "This box is behind a strict (symmetric) NAT. Calls between networks will need the "
        "TURN relay: forward the TURN ports below to this box.",
    ),
    "Symmetric UDP Firewall": (
        "yes",
        "A firewall in front of this box only lets answers through. Calls between networks "
        "will need the TURN relay: open the TURN ports below.",
    ),
    BLOCKED: (
        "yes",
        "The STUN servers did not answer: UDP to the internet looks blocked. Calls between "
        "networks will need the TURN relay, reached over TCP or TLS.",
    ),
}

_NOT_CONFIGURED = (
    "No STUN servers are configured (turn.stun_servers), so the appliance cannot check how the "
    "internet sees it. Calls inside your network work either way; for calls between networks, "
    "open the TURN ports below."
)


def _prefixed(step: str, errors: dict[str, str]) -> dict[str, str]:
    return {f"{step}.{key}": value for key, value in errors.items()}


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _clean_name(name: str) -> str:
    cleaned = name.strip().rstrip(".").lower()
    if cleaned.startswith("[") and cleaned.endswith("]"):
        cleaned = cleaned[1:-1]
    return cleaned


def _name_ok(name: str) -> bool:
    if not name or "*" in name:
        return False
    try:
        certificates.parse_name(name)
    except (certificates.CertificateError, ValueError):
        return False
    return True


def _host_for_url(name: str) -> str:
    try:
        if ipaddress.ip_address(name).version == 6:
            return f"[{name}]"
    except ValueError:
        pass
    return name


def qr_svg(text: str) -> str:
    """A QR code of `text` as a standalone SVG document that scales to its box."""
    import segno  # only when a QR code is asked for: not held by the idle web process

    buffer = io.BytesIO()
    segno.make(text, error="m").save(
        buffer,
        kind="svg",
        scale=1,
        border=2,
        xmldecl=False,
        svgclass=None,
        lineclass=None,
        omitsize=True,
        dark="#151a24",
        light="#ffffff",
    )
    return buffer.getvalue().decode("ascii")


StunProbe = Callable[..., Awaitable[stun_probe.StunResult | None]]
S3Check = Callable[[s3_check.S3Target], Awaitable[None]]


class SetupService:
    def __init__(
        self,
        settings: Settings,
        auth: AuthService,
        users: UserRepository,
        passwords: PasswordService,
        clock: Clock,
        *,
        restarter: Restarter | None = None,
        stun: StunProbe = stun_probe.probe,
        s3: S3Check = s3_check.round_trip,
        hostname: Callable[[], str] = socket.gethostname,
        addresses: Callable[[], list[str]] = netinfo.all_addresses,
    ) -> None:
        config = settings.config
        self._settings = settings
        self._auth = auth
        self._users = users
        self._passwords = passwords
        self._clock = clock
        self._token = config.setup.token.get_secret_value()
        self._site_name = config.organisation.name
        # Its own counters: guessing set-up tokens must not lock anyone out of logging in.
        self._throttle = LoginThrottle(config.auth, MemoryAttemptStore(), clock)
        self._finish_lock = asyncio.Lock()
        self._stun_lock = asyncio.Lock()
        self._stun_cache: tuple[float, StunReport] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.restarter: Restarter = restarter or from_environment()
        self._stun = stun
        self._s3 = s3
        self._hostname = hostname
        self._addresses = addresses

    # -- life cycle -------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._token)

    async def start(self) -> None:
        bootstrap.sync_token_file(self._settings)
        if self.pending:
            url = bootstrap.base_url(self._settings, self._share_candidates()[0])
            log.warning(
                "set-up is pending: open %s and enter the one-time token from %s",
                url,
                bootstrap.token_file(self._settings.data_dir),
            )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def site(self) -> SiteInfo:
        return SiteInfo(
            name=self._site_name,
            setup_pending=self.pending,
            recording_enabled=self._settings.config.recording.enabled,
            password_min_length=self._settings.config.auth.password_min_length,
        )

    # -- the token ----------------------------------------------------------------------------

    async def authorize(self, presented: str | None, client: str) -> None:
        """Let a wizard request through, or raise: 404 once set-up is done, 401 without the
        right token, 429 while this client must wait after wrong guesses."""
        if not self.pending:
            raise AppError(ErrorCode.NOT_FOUND, "set-up is already done")
        if not presented:
            raise AppError(
                ErrorCode.TOKEN_MISSING, "send the set-up token: Authorization: Setup <token>"
            )
        try:
            await self._throttle.check(client, client)
        except AppError as exc:
            raise AppError(
                ErrorCode.RATE_LIMITED,
                "too many wrong set-up tokens; try again later",
                retry_after=exc.retry_after,
            ) from None
        if not hmac.compare_digest(presented.encode(), self._token.encode()):
            await self._throttle.failed(client, client)
            raise AppError(ErrorCode.TOKEN_INVALID, "wrong set-up token")
        await self._throttle.succeeded(client)

    # -- what the box knows about itself ----------------------------------------------------------

    def _host_facts(self) -> tuple[str, str, list[str]]:
        hostname = self._hostname().strip().lower() or "appliance"
        short = hostname.split(".")[0]
        return hostname, f"{short}.local", self._addresses()

    def _covered_names(self) -> list[str]:
        hostname, mdns, addresses = self._host_facts()
        return _dedupe([hostname, mdns, "localhost", *addresses])

    def _share_candidates(self, extra: list[str] | None = None) -> list[str]:
        hostname, mdns, addresses = self._host_facts()
        extra_names = extra if extra is not None else list(self._settings.config.tls.extra_names)
        names = _dedupe([mdns, *addresses, hostname, *(_clean_name(n) for n in extra_names)])
        return names or ["localhost"]

    def environment(self) -> Environment:
        config = self._settings.config
        hostname, mdns, addresses = self._host_facts()
        storage = config.storage
        external = storage.managed == "none"
        defaults = SetupDraft(
            organisation=OrganisationStep(name=config.organisation.name),
            reach=ReachStep(
                share_name=self._share_candidates()[0], extra_names=list(config.tls.extra_names)
            ),
            tls=TlsStep(mode="upload" if config.tls.mode == "files" else "internal"),
            turn=TurnStep(
                port=config.turn.port,
                tls_port=config.turn.tls_port,
                min_port=config.turn.min_port,
                max_port=config.turn.max_port,
            ),
            storage=StorageStep(
                mode="external" if external else "managed",
                endpoint=storage.endpoint if external else "",
                bucket=storage.bucket,
                region=storage.region,
                access_key=storage.access_key if external else "",
            ),
            recording=RecordingStep(
                enabled=config.recording.enabled,
                retention_days=config.recording.retention_days,
            ),
        )
        return Environment(
            hostname=hostname,
            mdns_name=mdns,
            addresses=addresses,
            covered_names=self._covered_names(),
            share_names=self._share_candidates(),
            web=WebPorts(port=config.web.port, https_port=config.web.https_port),
            stun_configured=bool(config.turn.stun_servers),
            password_min_length=config.auth.password_min_length,
            defaults=defaults,
        )

    async def stun_report(self) -> StunReport:
        turn = self._settings.config.turn
        servers = list(turn.stun_servers)
        if not servers:
            return StunReport(
                configured=False, servers=[], needs_relay="unknown", verdict=_NOT_CONFIGURED
            )
        async with self._stun_lock:
            now = self._clock()
            if self._stun_cache and now - self._stun_cache[0] < STUN_CACHE_SECONDS:
                return self._stun_cache[1]
            found = await self._stun(servers, wait=turn.stun_timeout)
            report = self._verdict(servers, found)
            self._stun_cache = (now, report)
            return report

    @staticmethod
    def _verdict(servers: list[str], found: stun_probe.StunResult | None) -> StunReport:
        if found is None or not found.external_ip:
            needs, verdict = _NAT_VERDICTS[BLOCKED]
            return StunReport(configured=True, servers=servers, needs_relay=needs, verdict=verdict)
        needs, verdict = _NAT_VERDICTS.get(
            found.nat_type,
            (
                "unknown",
                "The STUN server saw this box's public address, but the kind of NAT could not "
                "be told. Some calls between networks may need the TURN relay: open the TURN "
                "ports below.",
            ),
        )
        return StunReport(
            configured=True,
            servers=servers,
            public_address=found.external_ip,
            public_port=found.external_port,
            nat_type=found.nat_type,
            needs_relay=needs,
            verdict=verdict,
        )

    # -- checking the steps ---------------------------------------------------------------------

    def _web_ports(self) -> dict[int, str]:
        web = self._settings.config.web
        ports = {web.port: "the web service (HTTP)"}
        if web.https_port:
            ports[web.https_port] = "the web service (HTTPS)"
        return ports

    def firewall(self, turn: TurnStep) -> list[FirewallRule]:
        web = self._settings.config.web
        rules = []
        if web.https_port:
            rules.append(FirewallRule(ports=str(web.https_port), protocol="TCP", purpose="HTTPS"))
        rules.append(
            FirewallRule(
                ports=str(web.port), protocol="TCP", purpose="HTTP (redirect and /trust page)"
            )
        )
        rules += [
            FirewallRule(ports=str(turn.port), protocol="UDP and TCP", purpose="STUN and TURN"),
            FirewallRule(ports=str(turn.tls_port), protocol="TCP", purpose="TURN over TLS"),
            FirewallRule(
                ports=f"{turn.min_port}-{turn.max_port}", protocol="UDP", purpose="call media relay"
            ),
        ]
        return rules

    @staticmethod
    def _check_organisation(step: OrganisationStep) -> dict[str, str]:
        name = step.name.strip()
        if not name:
            return {"name": "enter your organisation's name"}
        if len(name) > ORGANISATION_MAX:
            return {"name": f"at most {ORGANISATION_MAX} characters"}
        if any(unicodedata.category(c).startswith("C") for c in name):
            return {"name": "no control characters"}
        return {}

    async def _check_admin(self, step: AdminStep) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not USERNAME_PATTERN.match(step.username):
            errors["username"] = (
                "1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        try:
            self._auth.validate_new_password(step.password, step.username)
        except AppError as exc:
            errors["password"] = exc.message.removeprefix("password ")
        if not errors:
            existing = await self._users.by_username(step.username)
            # An admin with this very password is one a failed earlier finish left behind.
            if existing is not None and not (
                existing.is_admin
                and await self._passwords.verify(existing.password_hash, step.password)
            ):
                errors["username"] = "this username is already taken"
        return errors

    def _check_reach(self, step: ReachStep) -> dict[str, str]:
        errors: dict[str, str] = {}
        names = [_clean_name(n) for n in step.extra_names if n.strip()]
        bad = [n for n in names if not _name_ok(n)]
        if bad:
            errors["extra_names"] = "not a host name or IP address: " + ", ".join(bad[:5])
        share = _clean_name(step.share_name)
        if not share:
            errors["share_name"] = "choose the name people will use"
        elif share not in self._share_candidates(names):
            errors["share_name"] = "choose one of the names listed, or add it to the extra names"
        return errors

    def _check_tls(
        self, step: TlsStep, reach: ReachStep | None
    ) -> tuple[dict[str, str], CertificateSummary | None]:
        if step.mode == "internal":
            return {}, None
        errors: dict[str, str] = {}
        if not step.cert_pem.strip():
            errors["cert_pem"] = "paste or choose the certificate (PEM)"
        if not step.key_pem.strip():
            errors["key_pem"] = "paste or choose the private key (PEM)"
        if errors:
            return errors, None
        required = []
        if reach is not None and _name_ok(_clean_name(reach.share_name)):
            required.append(_clean_name(reach.share_name))
        try:
            info = certificates.validate_pair(
                step.cert_pem.encode(),
                step.key_pem.encode(),
                now=datetime.fromtimestamp(self._clock(), UTC),
                required_names=required,
            )
        except certificates.CertificateError as exc:
            message = str(exc)
            lowered = message.lower()
            field = "key_pem" if "private key" in lowered or "key file" in lowered else "cert_pem"
            if "does not belong" in lowered:
                field = "key_pem"
            return {field: message}, None
        return {}, CertificateSummary(
            names=list(info.names),
            not_after=info.not_after.isoformat(),
            issuer=info.issuer,
            self_signed=info.self_signed,
        )

    def _check_turn(self, step: TurnStep) -> dict[str, str]:
        errors: dict[str, str] = {}
        web = self._web_ports()
        values = {
            "port": (step.port, 1),
            "tls_port": (step.tls_port, 1),
            "min_port": (step.min_port, 1024),
            "max_port": (step.max_port, 1024),
        }
        for key, (value, low) in values.items():
            if value is None:
                errors[key] = "enter a port number"
            elif not low <= value <= 65535:
                errors[key] = f"between {low} and 65535"
            elif key in ("port", "tls_port") and value in web:
                errors[key] = f"already used by {web[value]}"
        if errors:
            return errors
        assert step.port is not None and step.tls_port is not None
        assert step.min_port is not None and step.max_port is not None
        if step.port == step.tls_port:
            errors["tls_port"] = "must differ from the TURN port"
        if step.min_port >= step.max_port:
            errors["max_port"] = "must be greater than the first relay port"
            return errors
        inside = range(step.min_port, step.max_port + 1)
        for port, what in [
            *web.items(),
            (step.port, "the TURN port"),
            (step.tls_port, "the TURN TLS port"),
        ]:
            if port in inside:
                errors["min_port"] = f"the relay range includes port {port}, {what}"
                break
        return errors

    async def _check_storage(self, step: StorageStep) -> dict[str, str]:
        if step.mode == "managed":
            return {}
        errors: dict[str, str] = {}
        url = urlsplit(step.endpoint.strip())
        if url.scheme not in ("http", "https") or not url.hostname:
            errors["endpoint"] = "an http:// or https:// URL, e.g. https://s3.example.org"
        elif url.path not in ("", "/") or url.query or url.fragment or url.username:
            errors["endpoint"] = "only scheme, host and port (the bucket goes below)"
        if not BUCKET_PATTERN.match(step.bucket):
            errors["bucket"] = "3-63 lower-case letters, digits, '.' or '-'"
        if not REGION_PATTERN.match(step.region):
            errors["region"] = "e.g. us-east-1"
        if not step.access_key.strip():
            errors["access_key"] = "enter the access key"
        if not step.secret_key:
            errors["secret_key"] = "enter the secret key"
        if errors:
            return errors
        target = s3_check.S3Target(
            endpoint=f"{url.scheme}://{url.netloc}",
            bucket=step.bucket,
            region=step.region,
            access_key=step.access_key.strip(),
            secret_key=step.secret_key,
        )
        try:
            await self._s3(target)
        except s3_check.S3CheckFailed as exc:
            return {exc.field: exc.message}
        return {}

    @staticmethod
    def _check_recording(step: RecordingStep) -> dict[str, str]:
        days = step.retention_days
        if days is None:
            return {"retention_days": "enter a number of days"}
        if not 1 <= days <= 3650:
            return {"retention_days": "between 1 and 3650 days"}
        return {}

    async def _check(self, step: Step, draft: SetupDraft) -> tuple[dict[str, str], StepReport]:
        report = StepReport()
        errors: dict[str, str]
        if step == "organisation" and draft.organisation:
            errors = self._check_organisation(draft.organisation)
        elif step == "admin" and draft.admin:
            errors = await self._check_admin(draft.admin)
        elif step == "reach" and draft.reach:
            errors = self._check_reach(draft.reach)
        elif step == "tls" and draft.tls:
            errors, report.certificate = self._check_tls(draft.tls, draft.reach)
        elif step == "turn" and draft.turn:
            errors = self._check_turn(draft.turn)
            if not errors:
                report.firewall = self.firewall(draft.turn)
        elif step == "storage" and draft.storage:
            errors = await self._check_storage(draft.storage)
        elif step == "recording" and draft.recording:
            errors = self._check_recording(draft.recording)
        else:
            return {step: "this step is missing from the request"}, report
        return _prefixed(step, errors), report

    @staticmethod
    def _refuse(errors: dict[str, str]) -> AppError:
        first = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return AppError(ErrorCode.INVALID_REQUEST, f"{first[0]}: {first[1]}{more}", fields=errors)

    async def validate_step(self, step: Step, draft: SetupDraft) -> StepReport:
        errors, report = await self._check(step, draft)
        if errors:
            raise self._refuse(errors)
        return report

    # -- finishing ----------------------------------------------------------------------------

    def _changes(self, plan: SetupPlan) -> dict[str, dict[str, object]]:
        storage = plan.storage
        current = self._settings.config.storage
        changes: dict[str, dict[str, object]] = {
            "organisation": {"name": plan.organisation.name.strip()},
            "tls": {
                "extra_names": _dedupe(
                    [_clean_name(n) for n in plan.reach.extra_names if n.strip()]
                )
            },
            "turn": {
                "port": plan.turn.port,
                "tls_port": plan.turn.tls_port,
                "min_port": plan.turn.min_port,
                "max_port": plan.turn.max_port,
            },
            "recording": {
                "enabled": plan.recording.enabled,
                "retention_days": plan.recording.retention_days,
            },
            "setup": {"token": ""},
        }
        if storage.mode == "external":
            url = urlsplit(storage.endpoint.strip())
            changes["storage"] = {
                "managed": "none",
                "endpoint": f"{url.scheme}://{url.netloc}",
                "public_url": "",
                "bucket": storage.bucket,
                "region": storage.region,
                "access_key": storage.access_key.strip(),
                "secret_key": storage.secret_key,
            }
        elif current.managed == "none":
            changes["storage"] = {"managed": "rclone"}
        if plan.tls.mode == "internal":
            changes["tls"]["mode"] = "internal"
        return changes

    def _restart_plan(self, plan: SetupPlan) -> RestartPlan:
        if plan.storage.mode == "external":
            return RestartPlan(restart=("turn",), stop=("store",), web=True)
        return RestartPlan(restart=("turn", "store"), stop=(), web=True)

    async def finish(self, plan: SetupPlan) -> FinishResult:
        async with self._finish_lock:
            # Whoever waited for the lock behind a finish that succeeded finds set-up done.
            if not self.pending:
                raise AppError(ErrorCode.NOT_FOUND, "set-up is already done")
            errors: dict[str, str] = {}
            draft = SetupDraft.model_validate(plan.model_dump())
            for step in STEPS:
                found, _ = await self._check(step, draft)
                errors.update(found)
            if errors:
                raise self._refuse(errors)
            changes = self._changes(plan)
            if plan.tls.mode == "upload":
                cert_path, key_path = await asyncio.to_thread(
                    certificates.install_pair,
                    self._settings.data_dir / "tls",
                    plan.tls.cert_pem.encode(),
                    plan.tls.key_pem.encode(),
                )
                changes["tls"].update(
                    {"mode": "files", "cert_file": str(cert_path), "key_file": str(key_path)}
                )
            if await self._users.by_username(plan.admin.username) is None:
                await self._auth.create_user(
                    plan.admin.username, plan.admin.password, is_admin=True
                )
            from appliance import config_writer  # tomlkit: loaded when the wizard writes

            try:
                await asyncio.to_thread(
                    config_writer.update_config, self._settings.config_path, changes
                )
            except (OSError, ConfigError) as exc:
                log.error("set-up could not write %s: %s", self._settings.config_path, exc)
                raise AppError(
                    ErrorCode.UNAVAILABLE,
                    "the configuration file could not be written; see the web service's log",
                ) from None
            self._token = ""
            self._site_name = plan.organisation.name.strip()
            bootstrap.remove_token_file(self._settings.data_dir)
            self._stun_cache = None
        log.info("set-up finished; first admin: %s", plan.admin.username)
        restart = self._restart_plan(plan)
        task = asyncio.create_task(self.restarter.apply(restart))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._result(plan, restart)

    def _result(self, plan: SetupPlan, restart: RestartPlan) -> FinishResult:
        share = _clean_name(plan.reach.share_name)
        url = bootstrap.base_url(self._settings, share)
        web = self._settings.config.web
        port = "" if web.port == 80 else f":{web.port}"
        # Over plain HTTP: a phone that does not trust the CA yet can still open it.
        trust_url = f"http://{_host_for_url(share)}{port}/trust"
        return FinishResult(
            url=url,
            trust_url=trust_url,
            qr_svg=qr_svg(url),
            firewall=self.firewall(plan.turn),
            restart=self.restarter.kind,
            next_step=describe(self.restarter, [*restart.restart, "web"]),
        )
