"""Build the ingestor app: `create_app()` (uvicorn: `fastapi_app.app.main:create_app --factory`).

`from fastapi_app.app.main import app` also works, as the seed's tests do: the module-level
`app` is built on first access.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import multiprocess
from pydantic.json_schema import models_json_schema

from dataplatform.contracts import ENTITIES
from dataplatform.contracts.documents import DocumentIn
from dataplatform.db.migrate import migrate
from dataplatform.ingest_ids import IngestIds
from dataplatform.settings import (
    IngestorSettings,
    ReceiptSettings,
    get_kafka_settings,
    get_mongo_settings,
    get_postgres_settings,
)
from fastapi_app.app.api.errors import install_error_handlers
from fastapi_app.app.api.fastpath import HotRoutes, IngestFastPath
from fastapi_app.app.api.routes import documents as document_routes
from fastapi_app.app.api.routes import entities, receipts, root
from fastapi_app.app.api.shedding import ConcurrencyLimitMiddleware
from fastapi_app.app.core.config import get_settings
from fastapi_app.app.core.publisher import Publisher
from fastapi_app.app.core.security import ApiKeyAuthenticator, RateLimiter
from fastapi_app.app.core.store import IngestStore
from fastapi_app.app.core.telemetry import (
    TelemetryMiddleware,
    default_tracer_provider,
    metrics_dir,
)
from fastapi_app.app.services.documents import DocumentService
from fastapi_app.app.services.ingest import IngestService

log = logging.getLogger(__name__)

DESCRIPTION = """
Validated, idempotent, durable HTTP ingest of financial transactions and insurance claims.

* **Auth**: every ingest and receipt call needs an API key, as `X-API-Key: <key>` or
  `Authorization: Bearer <key>` (create one with `dataplatform apikey create`).
* **Durability**: 2xx only after the record is committed to the Postgres outbox (starter) or
  acknowledged by Kafka with `acks=all` (intermediate, advanced).
* **Idempotency**: send `Idempotency-Key` to make retries safe (same key + same payload ->
  the original receipts; same key + different payload -> 409). Without it every accepted
  record is published: a resend is a further version of its key, and silver keeps one row
  per key (the latest by event time, then by the order the platform accepted them).
* **Exact money**: amounts are read from the JSON text as decimals (never floats), at most
  12 digits before the point and 6 after; a repeated JSON key is a 422.
* **Limits**: see `docs/API.md`; beyond them 413, over the rate limit 429, sink down or at
  capacity 503 with `Retry-After`.
"""


def _build_stack(
    settings: IngestorSettings, tracer_provider: TracerProvider
) -> tuple[IngestStore, Publisher]:
    # Imported here so unit tests with in-memory parts never load the drivers' setup.
    from fastapi_app.app.core.postgres import OutboxPublisher, PostgresStore

    postgres = get_postgres_settings()
    store = PostgresStore(postgres, settings)
    publisher: Publisher
    if settings.sink == "postgres":
        publisher = OutboxPublisher(postgres, settings)
    else:
        from fastapi_app.app.core.kafka import KafkaPublisher

        publisher = KafkaPublisher(get_kafka_settings(), settings, tracer_provider=tracer_provider)
    return store, publisher


def create_app(
    settings: IngestorSettings | None = None,
    *,
    store: IngestStore | None = None,
    publisher: Publisher | None = None,
    tracer_provider: TracerProvider | None = None,
    documents: DocumentService | None = None,
    ids: IngestIds | None = None,
    fast_path: bool = True,
) -> FastAPI:
    """Build the app.

    Args:
        settings: Defaults to the cached `IngestorSettings` (env vars and `.env`).
        store: Receipt store; default Postgres (migrated at startup).
        publisher: Sink; default the one `settings.sink` names.
        tracer_provider: Where spans go; default the process's, configured by OTEL_* variables.
        documents: The document service; default MongoDB (`MONGODB_*`) with the default stack,
            none (503 on the document routes) when `store` and `publisher` are given.
        ids: Signs ingest ids; default with `RECEIPT_SECRET`.
        fast_path: Serve the hot ingest routes with `IngestFastPath` (the default) rather than
            through FastAPI's routing; the answers are the same (tests compare both).
    """
    settings = (settings or get_settings()).worker_share()
    ids = ids or ReceiptSettings().ids()
    tracer_provider = tracer_provider or default_tracer_provider()
    hot = HotRoutes(())  # the fast path's routes, once the routers are built

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth_enabled:
            log.warning(
                "API key authentication is DISABLED (INGESTOR_AUTH_ENABLED=false, "
                "development mode): every caller is accepted"
            )
        if store is None or publisher is None:
            postgres = get_postgres_settings()
            applied = await asyncio.to_thread(migrate, postgres.conninfo(), settings.db_schema)
            if applied:
                log.info("applied migrations %s", ", ".join(applied))
            used_store, used_publisher = _build_stack(settings, tracer_provider)
        else:
            used_store, used_publisher = store, publisher
        used_documents = documents
        if used_documents is None and store is None:
            from dataplatform.documents.store import DocumentStore

            # pymongo connects lazily: without a document store (starter and intermediate
            # tracks) the document routes answer 503 and everything else works.
            used_documents = DocumentService(settings, DocumentStore(get_mongo_settings()))
        await used_store.start()
        await used_publisher.start()
        service = IngestService(settings, used_store, used_publisher, ids)
        app.state.service = service
        app.state.documents = used_documents
        app.state.authenticator = ApiKeyAuthenticator(
            used_store, ttl_s=settings.api_key_cache_ttl_s
        )
        log.info(
            "ingestor ready",
            extra={"fields": {"sink": used_publisher.sink, "auth": settings.auth_enabled}},
        )
        try:
            yield
        finally:
            app.state.service = None
            app.state.documents = None
            await service.drain()
            if used_documents is not None:
                await used_documents.close()
            await used_publisher.close()
            await used_store.close()
            await asyncio.to_thread(tracer_provider.force_flush)
            if metrics_dir():
                # Its in-flight gauge leaves the sum the other workers' `/metrics` report.
                multiprocess.mark_process_dead(os.getpid())

    # Swagger UI and ReDoc from assets installed with the package: no CDN, so /docs renders on
    # an air-gapped machine too.
    app = FastAPIOffline(
        title="Financial/Insurance Data Ingestor API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry server span per request, continuing the client's W3C
        # `traceparent`; every log line and every record of the request carries its trace.
        # Only that span: operation spans (dependencies, endpoint, serialisation) cost more
        # than they tell here, metrics are Prometheus's (`TelemetryMiddleware`), and probes
        # and scrapes make no span. It replaced opentelemetry-instrumentation-fastapi, whose
        # middleware took a third of a single record's CPU (docs/BENCHMARKS.md).
        telemetry={
            "tracer_provider": tracer_provider,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "exclude": lambda scope: _untraced(scope) or hot.match(scope) is not None,
        },
    )
    app.state.settings = settings
    app.state.service = None
    app.state.documents = None
    app.state.rate_limiter = RateLimiter(
        rate=settings.rate_limit_per_s, burst=settings.rate_limit_burst, workers=settings.workers
    )
    app.include_router(root.router)
    ingest_routes: list[APIRoute] = []
    for spec in entities.ENTITY_ROUTES:
        router = entities.build_router(spec, settings)
        app.include_router(router)
        ingest_routes.extend(route for route in router.routes if isinstance(route, APIRoute))
    app.include_router(receipts.router)
    app.include_router(document_routes.router)
    install_error_handlers(app)
    if fast_path:
        hot = HotRoutes(ingest_routes)
        # Inside the Prometheus and shedding middlewares, so its requests are counted and
        # shed like any other; it makes their spans itself (FastAPI's telemetry excludes them).
        app.add_middleware(IngestFastPath, routes=hot, tracer_provider=tracer_provider)
    app.add_middleware(TelemetryMiddleware)
    # Outermost: a shed request costs no span, no routing and no body read.
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        limit=settings.max_concurrency,
        retry_after_s=settings.retry_after_s,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


#: Probes and scrapes: no span (they would drown the traces).
_UNTRACED_PATHS = frozenset({"/health", "/metrics"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED_PATHS


def _openapi(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    # The ingest routes read raw bodies (for speed), so FastAPI does not see the contracts:
    # add their schemas for the `$ref`s in the routes' `openapi_extra`.
    _, defs = models_json_schema(
        [(entity.model, "validation") for entity in ENTITIES] + [(DocumentIn, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {}).update(defs.get("$defs", {}))
    components["securitySchemes"] = {
        "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "BearerAuth": {"type": "http", "scheme": "bearer"},
    }
    return spec


@cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> Any:
    if name == "app":
        return _default_app()
    raise AttributeError(name)
