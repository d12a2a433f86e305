"""Public endpoints: welcome, liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.deps import SettingsDep
from fastapi_app.app.core.telemetry import metrics_dir
from fastapi_app.app.models import Health, Readiness, Welcome

log = logging.getLogger(__name__)

router = APIRouter(tags=["service"])

WELCOME = {"message": "Welcome to Financial/Insurance Data Ingestor API!"}


@router.get("/", response_model=Welcome, summary="Welcome message")
async def read_main() -> dict[str, str]:
    """The seed's welcome message."""
    return WELCOME


@router.get("/health", response_model=Health, summary="Liveness")
async def health_check(settings: SettingsDep) -> dict[str, str]:
    """200 while the process serves requests (whether the sink is up is `/ready`)."""
    return {"status": "healthy", "sink": settings.sink}


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The API cannot ingest now."}},
    summary="Readiness: whether the API can ingest",
)
async def readiness_check(request: Request, settings: SettingsDep) -> Response:
    """200 while records can be ingested, 503 (with Retry-After) while they cannot.

    `ready`: the receipt store and the sink answer. `degraded` (still 200, Kafka tracks only):
    PostgreSQL is down but Kafka answers and API keys are cached (or auth is off), so ingest
    without an `Idempotency-Key` works; keyed requests, receipt lookups and keys not yet cached
    get 503. `unavailable` (503): the sink is down, or the store is down and no request can be
    authenticated, or the service is starting. Both checks run at once, each bounded by the
    sink timeout.
    """
    state = request.app.state
    service = getattr(state, "service", None)
    if service is None:
        return _readiness("unavailable", {"service": "starting"}, settings)
    sink = service.publisher.sink
    store_ok, sink_ok = await asyncio.gather(
        _answers("store", service.store.ping, settings.sink_timeout_s),
        _answers(sink, service.publisher.ping, settings.sink_timeout_s),
    )
    checks = {"store": _word(store_ok), sink: _word(sink_ok)}
    if store_ok and sink_ok:
        return _readiness("ready", checks, settings)
    authenticator = getattr(state, "authenticator", None)
    keys_known = not settings.auth_enabled or (
        authenticator is not None and authenticator.has_snapshot
    )
    if settings.auth_enabled and not store_ok:
        checks["api_keys"] = "cached" if keys_known else "not loaded"
    # The starter track's sink is the store itself: its ping has failed too.
    if sink_ok and sink != "postgres" and keys_known:
        return _readiness("degraded", checks, settings)
    return _readiness("unavailable", checks, settings)


async def _answers(name: str, ping: Callable[[], Awaitable[None]], timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await ping()
        return True
    except Exception as exc:
        # The cause goes to the log: this endpoint answers without an API key.
        log.warning("readiness check %s failed: %r", name, exc)
        return False


def _word(ok: bool) -> str:
    return "ok" if ok else "unavailable"


def _readiness(status: str, checks: dict[str, str], settings: IngestorSettings) -> Response:
    serving = status != "unavailable"
    return Response(
        orjson.dumps({"status": status, "checks": checks}),
        status_code=200 if serving else 503,
        media_type="application/json",
        headers=None if serving else {"Retry-After": str(settings.retry_after_s)},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    """Metrics in the Prometheus text format."""
    registry = REGISTRY
    if metrics_dir():
        # Every worker's values, from the files they write (`dataplatform run ingestor` sets
        # PROMETHEUS_MULTIPROC_DIR): the answer must not depend on which worker took the scrape.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
