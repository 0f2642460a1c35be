"""One error hierarchy with stable machine codes, shared by HTTP responses and Socket.IO acks."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    TOKEN_REUSED = "token_reused"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    MEDIA_TYPE_NOT_ALLOWED = "media_type_not_allowed"
    UPLOAD_MISSING = "upload_missing"
    UPLOAD_MISMATCH = "upload_mismatch"
    UPLOAD_EXPIRED = "upload_expired"
    RECORDING_DISABLED = "recording_disabled"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_DELETED = "account_deleted"
    PASSWORD_CHANGE_REQUIRED = "password_change_required"
    WEAK_PASSWORD = "weak_password"
    LAST_ADMIN = "last_admin"
    INVITATION_INVALID = "invitation_invalid"
    INVITATION_EXPIRED = "invitation_expired"
    INVITATION_USED_UP = "invitation_used_up"
    INVITATION_REVOKED = "invitation_revoked"
    INTERNAL = "internal_error"


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.TOKEN_MISSING: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_REVOKED: 401,
    ErrorCode.TOKEN_REUSED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.STORAGE_UNAVAILABLE: 503,
    ErrorCode.MEDIA_TYPE_NOT_ALLOWED: 415,
    ErrorCode.UPLOAD_MISSING: 409,
    ErrorCode.UPLOAD_MISMATCH: 409,
    ErrorCode.UPLOAD_EXPIRED: 410,
    ErrorCode.RECORDING_DISABLED: 409,
    ErrorCode.ACCOUNT_DISABLED: 403,
    ErrorCode.ACCOUNT_DELETED: 401,
    ErrorCode.PASSWORD_CHANGE_REQUIRED: 403,
    ErrorCode.WEAK_PASSWORD: 400,
    ErrorCode.LAST_ADMIN: 409,
    ErrorCode.INVITATION_INVALID: 404,
    ErrorCode.INVITATION_EXPIRED: 410,
    ErrorCode.INVITATION_USED_UP: 410,
    ErrorCode.INVITATION_REVOKED: 410,
    ErrorCode.INTERNAL: 500,
}


class AppError(Exception):
    """An error a client may see. `message` is safe to show; it never carries secrets."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after: float | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        #: Per-field messages, keyed by the field's dotted path (e.g. "admin.password").
        self.fields = fields

    @property
    def status(self) -> int:
        return _STATUS[self.code]

    def to_payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = round(self.retry_after, 3)
        if self.fields:
            body["fields"] = dict(self.fields)
        return body


class ConfigError(Exception):
    """The configuration file or environment holds a bad or unknown key."""
