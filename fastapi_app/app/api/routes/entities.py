"""The ingest routes of every entity, built by one factory: the seed's single-record endpoint
and the batch endpoint, both reading the raw body (`ingesting.ingest_one`/`ingest_many`)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from dataplatform.contracts import CLAIMS, TRANSACTIONS, Entity
from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.deps import get_principal, idempotency_key
from fastapi_app.app.api.ingesting import (
    INGEST_ERRORS,
    batch_openapi,
    ingest_many,
    ingest_one,
    receipt_link,
    single_openapi,
)
from fastapi_app.app.models import BatchIngested, ClaimIngested, IngestReceipt, TransactionIngested


@dataclass(frozen=True)
class EntityRoutes:
    """What differs between the entities' ingest routes.

    Attributes:
        entity: The contract.
        tag: OpenAPI tag, also the batch path's segment (`/v1/<tag>/batch`).
        single_path: The seed's single-record path.
        noun: One record in words (`financial transaction`), for the summaries.
        short: One record in one word (`transaction`), for the descriptions and route names.
        message: The seed's success message of the single-record endpoint.
        response_model: The single-record endpoint's answer (`models.py`).
    """

    entity: Entity
    tag: str
    single_path: str
    noun: str
    short: str
    message: str
    response_model: type[IngestReceipt]


#: Every entity's ingest routes, in the order the OpenAPI spec lists them.
ENTITY_ROUTES: tuple[EntityRoutes, ...] = (
    EntityRoutes(
        entity=TRANSACTIONS,
        tag="transactions",
        single_path="/ingest-financial-transaction/",
        noun="financial transaction",
        short="transaction",
        message="Financial transaction ingested successfully",
        response_model=TransactionIngested,
    ),
    EntityRoutes(
        entity=CLAIMS,
        tag="claims",
        single_path="/ingest-insurance-claim/",
        noun="insurance claim",
        short="claim",
        message="Insurance claim ingested successfully",
        response_model=ClaimIngested,
    ),
)


def build_router(spec: EntityRoutes, config: IngestorSettings) -> APIRouter:
    """One entity's router; limits shown in the OpenAPI spec come from `config`."""
    router = APIRouter(tags=[spec.tag])
    entity = spec.entity

    # The hot routes take only the request: authentication and the Idempotency-Key header are
    # read here, not by FastAPI dependencies, whose resolution cost a fifth of a single
    # record's CPU (docs/BENCHMARKS.md). The OpenAPI spec still declares both (`openapi_extra`).
    async def ingest_single(request: Request) -> Response:
        principal = await get_principal(request)
        return await ingest_one(
            request,
            settings=request.app.state.settings,
            principal=principal,
            idempotency_key=idempotency_key(request),
            entity=entity,
            message=spec.message,
        )

    async def ingest_batch(request: Request) -> Response:
        principal = await get_principal(request)
        return await ingest_many(
            request,
            settings=request.app.state.settings,
            principal=principal,
            idempotency_key=idempotency_key(request),
            entity=entity,
        )

    router.add_api_route(
        spec.single_path,
        ingest_single,
        methods=["POST"],
        name=f"ingest_{spec.short}",
        response_model=spec.response_model,
        responses={200: receipt_link("/ingest_id"), **INGEST_ERRORS},
        openapi_extra=single_openapi(entity),
        summary=f"Ingest one {spec.noun}",
        description=f"Ingest one {spec.short}; 200 once it is durable in the sink.",
    )
    router.add_api_route(
        f"/v1/{spec.tag}/batch",
        ingest_batch,
        methods=["POST"],
        name=f"ingest_{spec.tag}_batch",
        response_model=BatchIngested,
        responses={200: receipt_link("/results/0/receipt/ingest_id"), **INGEST_ERRORS},
        openapi_extra=batch_openapi(entity, max_records=config.max_batch_records),
        summary=f"Ingest a batch of {spec.noun}s (JSON array or NDJSON)",
        description=(
            f"Ingest many {spec.short}s; valid ones are accepted even if others are rejected."
        ),
    )
    return router
