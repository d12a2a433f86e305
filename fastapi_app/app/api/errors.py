"""Error answers: one JSON shape (`ErrorResponse`) for every 4xx and 5xx."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

ErrorDict = dict[str, Any]


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


def validation_details(exc: ValidationError, *, prefix: Sequence[str | int]) -> list[ErrorDict]:
    """pydantic's errors as `ErrorDetail` dicts, `loc` prefixed (e.g. `["body", 3]`).

    The input values are left out: they can be large or sensitive.
    """
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validation_message(details: Sequence[ErrorDict], *, title: str, skip: int = 1) -> str:
    """`"2 validation errors for <title>: timestamp: ...; amount: ..."`.

    Args:
        details: The errors.
        title: What was validated (the contract's name).
        skip: Leading `loc` items that are not field names (`body`, a batch index).
    """
    count = len(details)
    parts = []
    for item in details:
        field = ".".join(str(p) for p in item["loc"][skip:]) or "body"
        parts.append(f"{field}: {item['msg']}")
    plural = "" if count == 1 else "s"
    return f"{count} validation error{plural} for {title}: " + "; ".join(parts)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.message, exc.detail, exc.headers)


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
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
