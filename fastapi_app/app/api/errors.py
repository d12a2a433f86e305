"""Error answers: one JSON shape (`ErrorResponse`) for every 4xx and 5xx.

The services raise their own exceptions (`services/errors.py`); this module alone decides the
HTTP status and headers each one answers with.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fastapi_app.app.services.errors import (
    ErrorDict,
    IngestError,
    InvalidJson,
    KeyConflict,
    RecordRejected,
    SinkUnavailable,
    TooLarge,
    validation_message,
)

#: The status each refusal of the services answers with (the most specific class wins).
STATUS_OF_ERROR: dict[type[IngestError], int] = {
    InvalidJson: 400,
    KeyConflict: 409,
    TooLarge: 413,
    RecordRejected: 422,
    SinkUnavailable: 503,
}


class ApiError(Exception):
    """An answer other than success, with the sentence and details the client gets."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        detail: Sequence[ErrorDict] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        """Build; `detail` items have `loc`, `msg` and `type`."""
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.detail = list(detail)
        self.headers = headers or {}


def error_response(
    status_code: int,
    message: str,
    detail: Sequence[ErrorDict] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON error answer."""
    return Response(
        orjson.dumps({"message": message, "detail": list(detail)}),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def refusal_response(exc: ApiError | IngestError) -> Response:
    """The answer to a refusal of the routes (`ApiError`) or of the services (`IngestError`):
    the one mapping both the exception handlers and the ingest fast path use."""
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.message, exc.detail, exc.headers)
    status = next(STATUS_OF_ERROR[kind] for kind in type(exc).__mro__ if kind in STATUS_OF_ERROR)
    headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return error_response(status, exc.message, exc.detail, headers)


async def _refusal(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError | IngestError)
    return refusal_response(exc)


async def _request_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return error_response(422, validation_message(details, title="request"), details)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, str(exc.detail), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through `ErrorResponse`."""
    app.add_exception_handler(ApiError, _refusal)
    app.add_exception_handler(IngestError, _refusal)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
