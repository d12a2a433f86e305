"""`Annotated` dependencies of the routes, and the capped body reader."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import StringConstraints, TypeAdapter, ValidationError

from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.errors import ApiError
from fastapi_app.app.core.security import ANONYMOUS, ApiKeyAuthenticator, Principal, RateLimiter
from fastapi_app.app.services.errors import validation_details, validation_message
from fastapi_app.app.services.ingest import BatchFormat, IngestService

log = logging.getLogger(__name__)

#: Media types of NDJSON in use (there is no registered one).
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop per request that cost more than the whole handler.


async def get_settings(request: Request) -> IngestorSettings:
    """The settings the app was built with."""
    settings: IngestorSettings = request.app.state.settings
    return settings


def get_service(request: Request) -> IngestService:
    """The ingest service created by the lifespan."""
    service: IngestService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError(503, "the ingestor is starting", headers={"Retry-After": "1"})
    return service


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return None


def _unauthorized(message: str, kind: str) -> ApiError:
    return ApiError(
        401,
        message,
        detail=[{"loc": ["header", "X-API-Key"], "msg": message, "type": kind}],
        headers={"WWW-Authenticate": 'Bearer realm="ingestor"'},
    )


async def get_principal(request: Request) -> Principal:
    """Authenticate the API key (`X-API-Key` or `Authorization: Bearer`), then rate-limit it."""
    state = request.app.state
    settings: IngestorSettings = state.settings
    if not settings.auth_enabled:
        return ANONYMOUS
    presented = _presented_key(request)
    if presented is None:
        raise _unauthorized(
            "missing API key: send it as X-API-Key or Authorization: Bearer <key>", "missing"
        )
    authenticator: ApiKeyAuthenticator | None = getattr(state, "authenticator", None)
    if authenticator is None:
        raise ApiError(503, "the ingestor is starting", headers={"Retry-After": "1"})
    try:
        principal = await authenticator.authenticate(presented)
    except Exception as exc:
        log.warning("API key lookup failed: %s", exc)
        raise ApiError(
            503,
            "cannot verify API keys now (the key store is unavailable)",
            headers={"Retry-After": str(settings.retry_after_s)},
        ) from None
    if principal is None:
        raise _unauthorized("invalid or revoked API key", "invalid")
    limiter: RateLimiter = state.rate_limiter
    wait_s = limiter.acquire(principal)
    if wait_s:
        retry_after = max(1, int(wait_s + 0.999))
        raise ApiError(
            429,
            f"rate limit of API key {principal.name} exceeded; retry in {retry_after}s",
            detail=[
                {
                    "loc": ["header", "X-API-Key"],
                    "msg": "rate limit exceeded",
                    "type": "rate_limited",
                }
            ],
            headers={"Retry-After": str(retry_after)},
        )
    return principal


async def service_dependency(request: Request) -> IngestService:
    """`get_service` as an (async, so thread-free) dependency."""
    return get_service(request)


SettingsDep = Annotated[IngestorSettings, Depends(get_settings)]
ServiceDep = Annotated[IngestService, Depends(service_dependency)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
_IDEMPOTENCY_KEY_DESCRIPTION = (
    "Any unique string (e.g. a UUID) per logical request: retries with the same key and payload "
    "return the original receipts; a different payload gets 409."
)
_IDEMPOTENCY_KEY = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
)
#: The `Idempotency-Key` header as the ingest routes' OpenAPI `parameters` declare it: they read
#: it themselves (`idempotency_key`) rather than through a FastAPI dependency.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": _IDEMPOTENCY_KEY_DESCRIPTION,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[\\x21-\\x7e]+$",
        "title": "Idempotency-Key",
        "description": _IDEMPOTENCY_KEY_DESCRIPTION,
    },
}


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header; 422 (as FastAPI's header validation words it) when it is
    empty, longer than 255 characters or not visible ASCII."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    try:
        return _IDEMPOTENCY_KEY.validate_python(value)
    except ValidationError as exc:
        details = validation_details(exc, prefix=["header", "Idempotency-Key"])
        raise ApiError(422, validation_message(details, title="request"), detail=details) from None


def media_type(request: Request) -> str | None:
    """The request's media type without parameters, lower-case; None when absent."""
    value = request.headers.get("content-type")
    if not value:
        return None
    return value.partition(";")[0].strip().lower()


def _is_json(kind: str | None) -> bool:
    # No Content-Type is read as JSON, as FastAPI does, so the seed's clients keep working.
    return kind is None or kind == "application/json" or kind.endswith("+json")


def require_json(request: Request) -> None:
    """415 unless the body is JSON."""
    kind = media_type(request)
    if not _is_json(kind):
        raise ApiError(
            415,
            f"unsupported Content-Type {kind!r}: send application/json",
            detail=[
                {
                    "loc": ["header", "Content-Type"],
                    "msg": "must be application/json",
                    "type": "media_type",
                }
            ],
        )


def batch_format(request: Request) -> BatchFormat:
    """`json` (an array) or `ndjson` from the Content-Type; 415 for anything else."""
    kind = media_type(request)
    if _is_json(kind):
        return "json"
    if kind in NDJSON_TYPES:
        return "ndjson"
    raise ApiError(
        415,
        f"unsupported Content-Type {kind!r}: send application/json (an array of records) or "
        "application/x-ndjson (one record per line)",
        detail=[
            {
                "loc": ["header", "Content-Type"],
                "msg": "must be application/json or application/x-ndjson",
                "type": "media_type",
            }
        ],
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes.

    A declared `Content-Length` is checked before reading anything; a chunked body is counted
    while it streams in, so an oversized body is never buffered whole.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, *, at_least: bool = False) -> ApiError:
    more = "more than " if at_least else ""
    return ApiError(
        413,
        f"request body of {more}{size} bytes exceeds the limit of {limit} bytes",
        detail=[{"loc": ["body"], "msg": "body too large", "type": "body_too_large"}],
    )
