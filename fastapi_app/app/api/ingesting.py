"""What the per-entity ingest routes share: request handling and the OpenAPI of their bodies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import Request, Response

from dataplatform.contracts import Entity
from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.deps import (
    IDEMPOTENCY_KEY_PARAMETER,
    batch_format,
    get_service,
    read_body,
    require_json,
)
from fastapi_app.app.api.errors import ErrorDict
from fastapi_app.app.api.receipt_bodies import receipt_dict
from fastapi_app.app.core.security import Principal
from fastapi_app.app.core.store import entity_label
from fastapi_app.app.core.telemetry import BATCH_SIZE, RECORDS
from fastapi_app.app.models import ErrorResponse
from fastapi_app.app.services.errors import RecordRejected
from fastapi_app.app.services.ingest import parse_batch, parse_record

log = logging.getLogger(__name__)


def _json(body: dict[str, Any], status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def ingest_one(
    request: Request,
    *,
    settings: IngestorSettings,
    principal: Principal,
    idempotency_key: str | None,
    entity: Entity,
    message: str,
) -> Response:
    """Handle a single-record (seed) endpoint: 200 with the seed's message and the receipt."""
    require_json(request)
    body = await read_body(request, settings.max_record_bytes)
    try:
        parsed = parse_record(entity, body)
    except RecordRejected:  # a record refused by its contract (a batch counts its own)
        RECORDS.labels(entity_label(entity), "rejected").inc()
        raise
    # Looked up after parsing: invalid input gets its 4xx even while the sink is starting.
    service = get_service(request)
    outcome = await service.ingest(
        entity,
        parsed,
        principal=principal,
        route=request.scope["route"].path,
        idempotency_key=idempotency_key,
    )
    receipt = outcome.receipts[0]
    if settings.log_requests:
        log.info(
            "ingested",
            extra={
                "fields": {
                    "ingest_id": receipt.ingest_id,
                    "entity": receipt.entity,
                    "record_key": receipt.record_key,
                    "duplicate": outcome.duplicate[0],
                    "principal": principal.name,
                }
            },
        )
    return _json(
        {
            "message": message,
            entity.key_field: receipt.record_key,
            **receipt_dict(receipt, duplicate=outcome.duplicate[0]),
        }
    )


async def ingest_many(
    request: Request,
    *,
    settings: IngestorSettings,
    principal: Principal,
    idempotency_key: str | None,
    entity: Entity,
) -> Response:
    """Handle a batch endpoint: per-record results; 200 if any record was accepted, else 422."""
    fmt = batch_format(request)
    service = request.app.state.service
    if service is not None:
        service.check_capacity()
    body = await read_body(request, settings.max_batch_bytes)
    parsed = parse_batch(entity, body, fmt, settings)
    label = entity_label(entity)
    BATCH_SIZE.labels(label).observe(parsed.received)
    service = get_service(request)
    outcome = await service.ingest(
        entity,
        parsed,
        principal=principal,
        route=request.scope["route"].path,
        idempotency_key=idempotency_key,
    )
    results: list[dict[str, Any] | None] = [None] * parsed.received
    for (index, cand), receipt, dup in zip(
        parsed.valid, outcome.receipts, outcome.duplicate, strict=True
    ):
        results[index] = {
            "index": index,
            "outcome": "duplicate" if dup else "accepted",
            "record_key": cand.record_key,
            "receipt": receipt_dict(receipt, duplicate=dup),
            "errors": None,
        }
    rejected_errors: list[ErrorDict] = []
    for index, errors in parsed.rejected:
        results[index] = {
            "index": index,
            "outcome": "rejected",
            "record_key": None,
            "receipt": None,
            "errors": errors,
        }
        rejected_errors.extend(errors)
    duplicates = sum(outcome.duplicate)
    accepted = len(outcome.receipts) - duplicates
    rejected = len(parsed.rejected)
    if rejected:
        fields = sorted(
            {".".join(str(p) for p in e["loc"][2:]) or "record" for e in rejected_errors}
        )
        summary = (
            f"{accepted} of {parsed.received} records accepted, {duplicates} duplicates, "
            f"{rejected} rejected with {len(rejected_errors)} validation error"
            f"{'' if len(rejected_errors) == 1 else 's'} (fields: {', '.join(fields)})"
        )
    else:
        summary = f"{accepted} of {parsed.received} records accepted, {duplicates} duplicates"
    if settings.log_requests:
        log.info(
            "ingested batch",
            extra={
                "fields": {
                    "entity": label,
                    "received": parsed.received,
                    "accepted": accepted,
                    "duplicates": duplicates,
                    "rejected": rejected,
                    "first_ingest_id": outcome.receipts[0].ingest_id if outcome.receipts else None,
                    "principal": principal.name,
                }
            },
        )
    status_code = 200 if outcome.receipts else 422
    return _json(
        {
            "message": summary,
            "entity": label,
            "received": parsed.received,
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": rejected,
            "results": results,
        },
        status_code,
    )


# --------------------------------------------------------------------------- OpenAPI

SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]


def error_responses(
    *codes: int, text: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: the error body and what each status code means.

    Args:
        codes: The status codes the route may answer besides 200.
        text: A route's own description of some of them, replacing the ingest routes' one.
    """
    descriptions = {
        400: "Malformed request: invalid JSON, not an array, bad Content-Length.",
        401: "Missing, invalid or revoked API key.",
        409: "The Idempotency-Key was already used with a different payload.",
        413: "Body, batch or record over its documented limit.",
        415: "Unsupported Content-Type.",
        422: "Validation error: names every bad field.",
        429: "Rate limit of the API key exceeded; see Retry-After.",
        503: "Sink or store unavailable, timed out or at capacity; see Retry-After. Records "
        "acknowledged before are never lost; retry with the same payload.",
        **(text or {}),
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} for code in codes}


def receipt_errors(what: str, *, store: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a receipt route (`GET .../ingest/{ingest_id}`).

    Args:
        what: What was ingested (`record`, `document`).
        store: Where receipts are read from, named when it is unavailable.
    """
    return error_responses(
        401,
        404,
        422,
        429,
        503,
        text={
            404: f"No {what} with this ingest id sent with this API key.",
            422: "The ingest id does not have the shape of one.",
            503: f"The {store} is unavailable; see Retry-After.",
        },
    )


INGEST_ERRORS = error_responses(400, 401, 409, 413, 415, 422, 429, 503)

#: `operationId` of `GET /ingest/{ingest_id}`, the target of the receipts' OpenAPI links.
RECEIPT_OPERATION_ID = "get_receipt"


def receipt_link(pointer: str) -> dict[str, Any]:
    """The 200 answer's OpenAPI link to `GET /ingest/{ingest_id}`, with the id at `pointer`.

    Clients and stateful fuzzers follow it from a receipt to where the record is now.
    """
    return {
        "links": {
            "GetReceipt": {
                "operationId": RECEIPT_OPERATION_ID,
                "parameters": {"ingest_id": f"$response.body#{pointer}"},
                "description": "Where the record is now.",
            }
        }
    }


def _example(entity: Entity) -> dict[str, Any]:
    extra = entity.model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    first = examples[0] if isinstance(examples, list) and examples else None
    return first if isinstance(first, dict) else {}


def single_openapi(entity: Entity) -> dict[str, Any]:
    """`openapi_extra` of a single-record endpoint: the contract as the JSON request body."""
    name = entity.model.__name__
    example = _example(entity)
    return {
        "security": SECURITY,
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{name}"},
                    "example": example,
                }
            },
        },
    }


def batch_openapi(entity: Entity, *, max_records: int) -> dict[str, Any]:
    """`openapi_extra` of a batch endpoint: a JSON array or NDJSON text."""
    name = entity.model.__name__
    example = _example(entity)
    return {
        "security": SECURITY,
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": f"#/components/schemas/{name}"},
                        "minItems": 1,
                        "maxItems": max_records,
                    },
                    "example": [example],
                },
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "description": f"one {name} JSON object per line",
                    },
                    "example": orjson.dumps(example).decode() + "\n",
                },
            },
        },
    }
