"""The archive's manifest: what the archive holds, each member's size and SHA-256.

The tar's members, in this order: `database/appliance.db`, `config/appliance.toml`,
`data/<path>` (secrets of the data dir), `objects/<key>` (the store's objects), then
`manifest.json` and `manifest.json.sha256` (the manifest's own digest) last, because the
objects' sizes and digests are known only once they have streamed through.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.backup.errors import BackupError

FORMAT: Literal["appliance-backup"] = "appliance-backup"
FORMAT_VERSION = 1
DATABASE_NAME = "database/appliance.db"
CONFIG_NAME = "config/appliance.toml"
DATA_PREFIX = "data/"
OBJECT_PREFIX = "objects/"
MANIFEST_NAME = "manifest.json"
MANIFEST_SUM_NAME = "manifest.json.sha256"


class Kind(StrEnum):
    DATABASE = "database"
    CONFIG = "config"
    FILE = "file"
    OBJECT = "object"


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=4096)
    kind: Kind
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: The original file's mode (files), restored without group/other write.
    mode: int = Field(default=0o600, ge=0, le=0o777)
    #: Objects: the key in the bucket and the content type it was stored with.
    key: str = Field(default="", max_length=1024)
    content_type: str = Field(default="", max_length=255)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["appliance-backup"] = FORMAT
    format_version: int = FORMAT_VERSION
    appliance_version: str
    created_at: str  # ISO 8601, UTC: when the backup was finished
    #: Unix time just before the database snapshot's read transaction began: every transaction
    #: committed before it is in the archive's database.
    snapshot_at: float
    schema_version: int = Field(ge=0)
    bucket: str
    objects_skipped: int = Field(default=0, ge=0)
    members: list[Member]

    def encode(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=True).encode() + b"\n"

    @property
    def total_size(self) -> int:
        return sum(m.size for m in self.members)


def digest_line(data: bytes) -> bytes:
    """The content of `manifest.json.sha256`."""
    return hashlib.sha256(data).hexdigest().encode() + b"\n"


def parse(data: bytes, digest: bytes | None) -> Manifest:
    """The manifest of an archive, checked against its own digest member."""
    if digest is None:
        raise BackupError("the archive has no manifest digest: it is damaged or truncated")
    if digest != digest_line(data):
        raise BackupError("the manifest does not match its digest: the archive is damaged")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BackupError("the manifest is not valid JSON: the archive is damaged") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BackupError("this is not an appliance backup (no appliance manifest)")
    if raw.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"backup format version {raw.get('format_version')!r} is not supported "
            f"(this appliance reads version {FORMAT_VERSION})"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BackupError(f"the manifest is invalid at {where}: {first['msg']}") from None
