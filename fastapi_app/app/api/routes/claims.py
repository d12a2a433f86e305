"""Insurance claims: the seed's single-record endpoint and the batch endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dataplatform.contracts import CLAIMS
from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.deps import IdempotencyKeyDep, PrincipalDep, SettingsDep
from fastapi_app.app.api.ingesting import (
    INGEST_ERRORS,
    batch_openapi,
    ingest_many,
    ingest_one,
    single_openapi,
)
from fastapi_app.app.models import BatchIngested, ClaimIngested

MESSAGE = "Insurance claim ingested successfully"


def build_router(config: IngestorSettings) -> APIRouter:
    """The router; limits shown in the OpenAPI spec come from `config`."""
    router = APIRouter(tags=["claims"])

    @router.post(
        "/ingest-insurance-claim/",
        response_model=ClaimIngested,
        responses=INGEST_ERRORS,
        openapi_extra=single_openapi(CLAIMS),
        summary="Ingest one insurance claim",
    )
    async def ingest_claim(
        request: Request,
        principal: PrincipalDep,
        settings: SettingsDep,
        idempotency_key: IdempotencyKeyDep = None,
    ) -> Response:
        """Ingest one claim; 200 once it is durable in the sink."""
        return await ingest_one(
            request,
            settings=settings,
            principal=principal,
            idempotency_key=idempotency_key,
            entity=CLAIMS,
            message=MESSAGE,
        )

    @router.post(
        "/v1/claims/batch",
        response_model=BatchIngested,
        responses=INGEST_ERRORS,
        openapi_extra=batch_openapi(CLAIMS, max_records=config.max_batch_records),
        summary="Ingest a batch of insurance claims (JSON array or NDJSON)",
    )
    async def ingest_claims_batch(
        request: Request,
        principal: PrincipalDep,
        settings: SettingsDep,
        idempotency_key: IdempotencyKeyDep = None,
    ) -> Response:
        """Ingest many claims; valid ones are accepted even if others are rejected."""
        return await ingest_many(
            request,
            settings=settings,
            principal=principal,
            idempotency_key=idempotency_key,
            entity=CLAIMS,
        )

    return router
