"""Typed configuration: one TOML file in the data dir, every key overridable by environment.

`APPLIANCE_<SECTION>__<KEY>` overrides `[section] key`. Unknown or bad keys fail loading with a
`ConfigError` that names the key.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from appliance.errors import ConfigError

if TYPE_CHECKING:  # tomlkit is imported where a config file is written, not by every service
    import tomlkit

CONFIG_FILENAME = "appliance.toml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebConfig(Section):
    host: str = "0.0.0.0"  # noqa: S104 - the appliance serves its LAN by design
    port: int = Field(default=8080, ge=1, le=65535)
    https_port: int = Field(
        default=8443,
        ge=0,
        le=65535,
        description="HTTPS listener (0: none). Plain HTTP on `port` then serves loopback clients "
        "only and redirects everyone else here.",
    )
    public_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed for Socket.IO and CORS besides the page's own origin.",
    )
    max_http_buffer_size: int = Field(default=1_000_000, ge=1024, le=64_000_000)
    # Whole seconds: python-engineio announces the interval to clients truncated to seconds.
    ping_interval: int = Field(default=25, ge=1, le=300)
    ping_timeout: int = Field(default=20, ge=1, le=300)
    presence_grace: float = Field(default=5.0, ge=0)
    trust_forwarded_for: bool = False
    server: Literal["uvicorn", "hypercorn"] = "uvicorn"
    webui_dir: str = ""
    fast_paths: bool = Field(
        default=True,
        description="The Socket.IO fast paths that reach into library internals "
        "(appliance/transport/realtime/engine.py); false: python-socketio's stock paths.",
    )
    websocket_deflate: bool = Field(
        default=False,
        description="Accept permessage-deflate on websockets (uvicorn). Off, as in Node's "
        "socket.io: chat frames are small, and compressing each one cost CPU and memory per "
        "socket (docs/benchmarks.md).",
    )

    @field_validator("public_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or "*" in origin:
                raise ValueError("wildcard origins are not allowed; list each origin")
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"origin {origin!r} must start with http:// or https://")
        return [o.rstrip("/") for o in value]


class TlsConfig(Section):
    """The certificate of the web service (and of coturn's `turns:`)."""

    mode: Literal["internal", "files"] = "internal"
    cert_file: str = Field(default="", description="mode files: PEM chain, e.g. fullchain.pem")
    key_file: str = Field(default="", description="mode files: its PEM private key")
    extra_names: list[str] = Field(
        default_factory=list,
        description="mode internal: more DNS names or IP addresses for the server certificate",
    )
    renew_before_days: int = Field(default=30, ge=1, le=365)
    check_interval: float = Field(default=60.0, gt=0, le=86_400)


class OrganisationConfig(Section):
    name: str = Field(default="", max_length=80)


class RecordingConfig(Section):
    enabled: bool = False
    retention_days: int = Field(default=30, ge=1, le=3650)
    passthrough: bool = Field(
        default=True,
        description="Write received frames without decoding (false: aiortc's MediaRecorder).",
    )
    host_addresses: list[str] = Field(
        default_factory=list,
        description="The only addresses the recorder offers as ICE host candidates (empty: all).",
    )
    max_concurrent: int = Field(default=4, ge=1, le=64)
    start_timeout: float = Field(default=20.0, gt=0, le=600)
    web_url: str = ""
    cleanup_interval: float = Field(default=3600.0, gt=0)

    @field_validator("host_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.ip_address(address)  # ValueError names the bad one
        return value

    @field_validator("web_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("web_url must start with http:// or https://")
        return value.rstrip("/")


class AuthConfig(Section):
    jwt_secret: SecretStr = SecretStr("")
    jwt_key_id: str = "k1"
    jwt_retired_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="Old keys by key id, accepted for verification only."
    )
    issuer: str = "appliance"
    audience: str = "appliance-clients"
    access_ttl: int = Field(default=900, ge=1, le=86_400)
    refresh_ttl: int = Field(default=30 * 86_400, ge=60)
    leeway: int = Field(default=10, ge=0, le=120)
    login_free_failures: int = Field(default=5, ge=1)
    login_base_delay: float = Field(default=1.0, gt=0)
    login_max_delay: float = Field(default=900.0, gt=0)
    password_min_length: int = Field(default=8, ge=1)
    password_check_common: bool = Field(
        default=True, description="Refuse passwords in the shipped list of common ones."
    )
    invitation_signups_per_hour: int = Field(default=10, ge=1, le=100_000)


class DatabaseConfig(Section):
    path: str = "appliance.db"
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = Field(default=5000, ge=0)


class ChatConfig(Section):
    max_text_length: int = Field(default=4000, ge=1, le=100_000)
    history_max_limit: int = Field(default=100, ge=1, le=1000)
    sync_max_messages: int = Field(default=500, ge=1, le=10_000)
    typing_ttl: float = Field(default=6.0, gt=0)
    max_group_members: int = Field(default=256, ge=2)
    write_batch_max: int = Field(default=256, ge=1, le=5000)


class RateLimitsConfig(Section):
    """Token buckets per user, shared by all of the user's sockets: `rate` tokens a second,
    at most `burst` saved up."""

    chat_rate: float = Field(default=10.0, gt=0)
    chat_burst: int = Field(default=30, ge=1)
    read_rate: float = Field(default=20.0, gt=0)
    read_burst: int = Field(default=60, ge=1)
    typing_rate: float = Field(default=2.0, gt=0)
    typing_burst: int = Field(default=10, ge=1)
    signaling_rate: float = Field(default=50.0, gt=0)
    signaling_burst: int = Field(default=200, ge=1)
    media_rate: float = Field(default=1.0, gt=0)
    media_burst: int = Field(default=10, ge=1)
    abuse_factor: float = Field(default=3.0, gt=1)
    abuse_window: float = Field(default=10.0, gt=0)


class CallsConfig(Section):
    ring_timeout: float = Field(default=30.0, gt=0, le=600)
    reconnect_grace: float = Field(default=10.0, ge=0, le=300)
    force_relay: bool = False


class TurnConfig(Section):
    secret: SecretStr = SecretStr("")
    realm: str = "appliance"
    port: int = Field(default=3478, ge=1, le=65535)
    tls_port: int = Field(default=5349, ge=1, le=65535)
    cert_file: str = ""
    key_file: str = ""
    listen_ips: list[str] = Field(default_factory=list)
    relay_ip: str = ""
    external_ip: str = ""
    public_host: str = ""
    min_port: int = Field(default=49160, ge=1024, le=65535)
    max_port: int = Field(default=49200, ge=1024, le=65535)
    credential_ttl: int = Field(default=3600, ge=60, le=7 * 86_400)
    user_quota: int = Field(default=12, ge=0)
    total_quota: int = Field(default=1200, ge=0)
    stun_servers: list[str] = Field(default_factory=list)
    stun_timeout: float = Field(default=2.0, gt=0, le=30)
    server_binary: str = "turnserver"
    allow_loopback_peers: bool = False


DEFAULT_MEDIA_TYPES = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/webm",
    "audio/mpeg",
    "audio/ogg",
    "audio/webm",
    "audio/wav",
    "application/pdf",
    "text/plain",
    "application/zip",
]


class StorageConfig(Section):
    managed: Literal["rclone", "minio", "none"] = "rclone"
    address: str = "127.0.0.1:9000"
    endpoint: str = ""
    public_url: str = ""
    bucket: str = Field(default="appliance-media", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: SecretStr = SecretStr("")
    max_upload_size: int = Field(default=100 * 1024 * 1024, ge=1)
    allowed_types: list[str] = Field(default_factory=lambda: list(DEFAULT_MEDIA_TYPES))
    upload_url_ttl: int = Field(default=300, ge=10, le=3600)
    download_url_ttl: int = Field(default=300, ge=10, le=3600)
    pending_ttl: int = Field(default=900, ge=1)
    cleanup_interval: float = Field(default=60.0, gt=0)
    request_timeout: float = Field(default=5.0, gt=0)
    rclone_binary: str = ""
    minio_binary: str = "minio"

    @property
    def internal_url(self) -> str:
        """Where the web service reaches the store."""
        if self.managed == "none":
            return self.endpoint.rstrip("/")
        return f"http://{self.address}"


class SetupConfig(Section):
    token: SecretStr = SecretStr("")


class BackupConfig(Section):
    """`appliance backup --scheduled` (the nightly timer): where, how many, encrypted or not."""

    directory: str = Field(
        default="",
        max_length=4096,
        description="Where scheduled backups go (empty: <data-dir>/backups).",
    )
    keep: int = Field(default=7, ge=1, le=1000, description="Newest scheduled backups kept.")
    passphrase_file: str = Field(
        default="",
        max_length=4096,
        description="File holding the passphrase (first line); empty: scheduled backups are "
        "not encrypted.",
    )


class MetricsConfig(Section):
    """`GET /metrics` (Prometheus text format): who may scrape it."""

    enabled: bool = True
    allow_from: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        max_length=256,
        description="Client networks (CIDR) allowed to scrape without a token.",
    )
    token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token that allows scraping from anywhere (empty: no token access).",
    )

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(v.strip(), strict=False)) for v in value]

    @field_validator("token")
    @classmethod
    def _token_length(cls, value: SecretStr) -> SecretStr:
        length = len(value.get_secret_value())
        if length and not 16 <= length <= 256:
            raise ValueError("token must be empty or 16-256 characters")
        return value


class LoggingConfig(Section):
    """The log lines every service writes (to stderr; the journal under systemd)."""

    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class DoctorConfig(Section):
    """`appliance doctor` and `GET /api/admin/doctor`: thresholds and the NTP source."""

    check_timeout: float = Field(default=10.0, ge=1, le=120)
    ntp_server: str = Field(default="", max_length=255, description="host[:port]; empty: skip")
    clock_warn_seconds: float = Field(default=1.0, gt=0, le=86_400)
    clock_fail_seconds: float = Field(default=60.0, gt=0, le=86_400)
    min_free_mb: int = Field(default=500, ge=0, le=100_000_000)
    warn_free_mb: int = Field(default=2000, ge=0, le=100_000_000)
    min_open_files: int = Field(default=4096, ge=16, le=10_000_000)
    wal_warn_mb: int = Field(default=64, ge=1, le=1_000_000)
    integrity_full_max_mb: int = Field(default=1024, ge=0, le=1_000_000)

    @field_validator("ntp_server")
    @classmethod
    def _ntp_server(cls, value: str) -> str:
        value = value.strip()
        if any(c.isspace() or c in "/@?#" for c in value):
            raise ValueError("ntp_server must be host or host:port")
        return value


class AppConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="APPLIANCE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    web: WebConfig = WebConfig()
    tls: TlsConfig = TlsConfig()
    organisation: OrganisationConfig = OrganisationConfig()
    recording: RecordingConfig = RecordingConfig()
    auth: AuthConfig = AuthConfig()
    database: DatabaseConfig = DatabaseConfig()
    chat: ChatConfig = ChatConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    calls: CallsConfig = CallsConfig()
    turn: TurnConfig = TurnConfig()
    storage: StorageConfig = StorageConfig()
    setup: SetupConfig = SetupConfig()
    backup: BackupConfig = BackupConfig()
    doctor: DoctorConfig = DoctorConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which is passed in as init values.
        return (env_settings, init_settings)


class Settings:
    """The loaded configuration plus where it lives."""

    def __init__(self, data_dir: Path, config: AppConfig, config_path: Path) -> None:
        self.data_dir = data_dir
        self.config = config
        self.config_path = config_path

    @property
    def database_path(self) -> Path:
        path = Path(self.config.database.path)
        return path if path.is_absolute() else self.data_dir / path

    @property
    def webui_dir(self) -> Path:
        if self.config.web.webui_dir:
            return Path(self.config.web.webui_dir)
        return Path(__file__).resolve().parent.parent / "webui" / "dist"


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{key}: {msg}")
    return f"invalid configuration in {source}: " + "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> AppConfig:
    try:
        return AppConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load(data_dir: Path, config_path: Path | None = None) -> Settings:
    path = config_path or data_dir / CONFIG_FILENAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no configuration at {path}; run `appliance init` first") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    config = parse_config(raw, str(path))
    if not config.auth.jwt_secret.get_secret_value():
        raise ConfigError(f"{path}: auth.jwt_secret is empty")
    return Settings(data_dir, config, path)


def generate_config_document() -> tomlkit.TOMLDocument:
    """A new config file with fresh secrets and every other key at its default (commented)."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment("Appliance configuration. Every key: docs/config.md."))
    doc.add(tomlkit.comment("Any key can be overridden by APPLIANCE_<SECTION>__<KEY>."))
    web = tomlkit.table()
    web.add(tomlkit.comment('host = "0.0.0.0"'))
    web.add(tomlkit.comment("port = 8080"))
    web.add(tomlkit.comment("https_port = 8443"))
    web.add(tomlkit.comment('public_origins = ["https://chat.example.org"]'))
    doc["web"] = web
    auth = tomlkit.table()
    auth["jwt_secret"] = secrets.token_urlsafe(48)
    auth["jwt_key_id"] = "k" + secrets.token_hex(4)
    doc["auth"] = auth
    turn = tomlkit.table()
    turn["secret"] = secrets.token_urlsafe(32)
    doc["turn"] = turn
    storage = tomlkit.table()
    storage["access_key"] = "appliance" + secrets.token_hex(6)
    storage["secret_key"] = secrets.token_urlsafe(32)
    doc["storage"] = storage
    setup = tomlkit.table()
    setup.add(tomlkit.comment("One-time token for the set-up wizard; cleared when set-up is done."))
    setup["token"] = secrets.token_urlsafe(24)
    doc["setup"] = setup
    return doc


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), created that way from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
