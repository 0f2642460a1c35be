"""Every HTTP error as `{"error": {"code", "message"}}` with a stable code."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from quart import Quart, Response, jsonify
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from appliance.errors import AppError, ErrorCode

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.TOKEN_MISSING,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID_REQUEST,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
}


def error_response(error: AppError) -> Response:
    response = jsonify({"error": error.to_payload()})
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, int(error.retry_after + 0.999)))
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="appliance"'
    return response


def _validation_message(exc: RequestSchemaValidationError) -> str:
    inner = exc.validation_error
    if isinstance(inner, ValidationError) and inner.errors():
        first = inner.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return f"{where}: {first['msg']}"
    return "request body must be a JSON object matching the schema"


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(AppError)
    async def _app_error(exc: AppError) -> Response:
        return error_response(exc)

    @app.errorhandler(RequestSchemaValidationError)
    async def _schema_error(exc: RequestSchemaValidationError) -> Response:
        return error_response(AppError(ErrorCode.INVALID_REQUEST, _validation_message(exc)))

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, ErrorCode.INTERNAL)
        response = error_response(AppError(code, exc.description or exc.name))
        response.status_code = status
        return response

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(AppError(ErrorCode.INTERNAL, "internal error"))
