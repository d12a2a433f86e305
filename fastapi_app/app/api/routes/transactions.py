"""Financial transactions: the seed's single-record endpoint and the batch endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dataplatform.contracts import TRANSACTIONS
from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.deps import IdempotencyKeyDep, PrincipalDep, SettingsDep
from fastapi_app.app.api.ingesting import (
    INGEST_ERRORS,
    batch_openapi,
    ingest_many,
    ingest_one,
    single_openapi,
)
from fastapi_app.app.models import BatchIngested, TransactionIngested

MESSAGE = "Financial transaction ingested successfully"


def build_router(config: IngestorSettings) -> APIRouter:
    """The router; limits shown in the OpenAPI spec come from `config`."""
    router = APIRouter(tags=["transactions"])

    @router.post(
        "/ingest-financial-transaction/",
        response_model=TransactionIngested,
        responses=INGEST_ERRORS,
        openapi_extra=single_openapi(TRANSACTIONS),
        summary="Ingest one financial transaction",
    )
    async def ingest_transaction(
        request: Request,
        principal: PrincipalDep,
        settings: SettingsDep,
        idempotency_key: IdempotencyKeyDep = None,
    ) -> Response:
        """Ingest one transaction; 200 once it is durable in the sink."""
        return await ingest_one(
            request,
            settings=settings,
            principal=principal,
            idempotency_key=idempotency_key,
            entity=TRANSACTIONS,
            message=MESSAGE,
        )

    @router.post(
        "/v1/transactions/batch",
        response_model=BatchIngested,
        responses=INGEST_ERRORS,
        openapi_extra=batch_openapi(TRANSACTIONS, max_records=config.max_batch_records),
        summary="Ingest a batch of financial transactions (JSON array or NDJSON)",
    )
    async def ingest_transactions_batch(
        request: Request,
        principal: PrincipalDep,
        settings: SettingsDep,
        idempotency_key: IdempotencyKeyDep = None,
    ) -> Response:
        """Ingest many transactions; valid ones are accepted even if others are rejected."""
        return await ingest_many(
            request,
            settings=settings,
            principal=principal,
            idempotency_key=idempotency_key,
            entity=TRANSACTIONS,
        )

    return router
