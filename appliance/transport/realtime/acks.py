"""Uniform acks for client events: `{"ok": true, ...}` or `{"ok": false, "error": {...}}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from appliance.errors import AppError, ErrorCode

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Ack = dict[str, Any]


def ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def fail(error: AppError) -> Ack:
    return {"ok": False, "error": error.to_payload()}


def parse(model: type[M], data: Any) -> M:
    """Validate a payload; any problem becomes one `invalid_request` naming the field."""
    if not isinstance(data, dict):
        raise AppError(ErrorCode.INVALID_REQUEST, "payload must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise AppError(ErrorCode.INVALID_REQUEST, f"{where}: {first['msg']}") from None


async def guarded(event: str, work: Callable[[], Awaitable[Ack]]) -> Ack:
    """Run a handler body so that nothing escapes: typed errors become acks, bugs get logged."""
    try:
        return await work()
    except AppError as exc:
        return fail(exc)
    except Exception:
        log.exception("handler for %s failed", event)
        return fail(AppError(ErrorCode.INTERNAL, "internal error"))
