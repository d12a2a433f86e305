"""Semi-structured documents: ingest one, and read its receipt back (only with the same key)."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response

from dataplatform.documents.store import COLLECTION, StoredDocument
from dataplatform.settings import get_mongo_settings
from fastapi_app.app.api.deps import (
    IDEMPOTENCY_KEY_PARAMETER,
    PrincipalDep,
    SettingsDep,
    idempotency_key,
    read_body,
    require_json,
)
from fastapi_app.app.api.errors import ApiError
from fastapi_app.app.api.ingesting import INGEST_ERRORS, SECURITY, receipt_errors
from fastapi_app.app.models import DocumentReceipt
from fastapi_app.app.services.documents import DocumentService, parse_document

log = logging.getLogger(__name__)

router = APIRouter(tags=["documents"])


def _service(request: Request) -> DocumentService:
    service: DocumentService | None = getattr(request.app.state, "documents", None)
    if service is None:
        raise ApiError(503, "the document store is not configured", headers={"Retry-After": "1"})
    return service


def document_receipt(document: StoredDocument, *, duplicate: bool) -> dict[str, Any]:
    """`DocumentReceipt` as a dict (serialised by orjson): durable, then landed in bronze."""
    database = get_mongo_settings().db
    stages: list[dict[str, Any]] = [
        {"stage": "accepted", "at": document.received_at, "where": None},
        {
            "stage": "durable",
            "at": document.received_at,
            "where": f"mongodb {database}.{COLLECTION} ingest_seq {document.ingest_seq}",
        },
    ]
    if document.landed_at is not None:
        version = "" if document.bronze_version is None else f" version {document.bronze_version}"
        stages.append(
            {"stage": "landed", "at": document.landed_at, "where": f"bronze Delta table{version}"}
        )
    return {
        "ingest_id": document.ingest_id,
        "entity": document.entity,
        "document_id": document.document_id,
        "status": "durable" if document.landed_at is None else "landed",
        "duplicate": duplicate,
        "received_at": document.received_at,
        "landed_at": document.landed_at,
        "destination": {
            "sink": "mongodb",
            "database": database,
            "collection": COLLECTION,
            "ingest_seq": document.ingest_seq,
        },
        "stages": stages,
    }


@router.post(
    "/v1/documents",
    name="ingest_document",
    response_model=DocumentReceipt,
    responses=INGEST_ERRORS,
    openapi_extra={
        "security": SECURITY,
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DocumentIn"}}
            },
        },
    },
    summary="Ingest one semi-structured document (claim note, adjuster report, customer profile)",
    description="Store one document version; 200 once the document store acknowledged it.",
)
async def ingest_document(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
) -> Response:
    """Validate the envelope, keep the body's exact JSON, store one version."""
    key = idempotency_key(request)
    require_json(request)
    body = await read_body(request, settings.max_document_bytes)
    parsed = parse_document(body)
    outcome = await _service(request).ingest(parsed, principal=principal, idempotency_key=key)
    document = outcome.document
    if settings.log_requests:
        log.info(
            "ingested document",
            extra={
                "fields": {
                    "ingest_id": document.ingest_id,
                    "entity": document.entity,
                    "document_id": document.document_id,
                    "ingest_seq": document.ingest_seq,
                    "duplicate": outcome.duplicate,
                    "principal": principal.name,
                }
            },
        )
    return Response(
        orjson.dumps(
            {
                "message": "Document ingested successfully",
                **document_receipt(document, duplicate=outcome.duplicate),
            }
        ),
        media_type="application/json",
    )


@router.get(
    "/v1/documents/ingest/{ingest_id}",
    name="get_document_receipt",
    response_model=DocumentReceipt,
    responses=receipt_errors("document", store="document store"),
    openapi_extra={"security": SECURITY},
    summary="The receipt of one ingested document",
)
async def get_document_receipt(
    ingest_id: UUID, request: Request, principal: PrincipalDep
) -> Response:
    """Where a document version is now (durable -> landed); only the key that sent it sees it."""
    document = await _service(request).get(str(ingest_id), principal=principal)
    if document is None:
        raise ApiError(
            404,
            f"no document with ingest id {ingest_id}",
            detail=[
                {"loc": ["path", "ingest_id"], "msg": "unknown ingest id", "type": "not_found"}
            ],
        )
    return Response(
        orjson.dumps({"message": "Document found", **document_receipt(document, duplicate=False)}),
        media_type="application/json",
    )
