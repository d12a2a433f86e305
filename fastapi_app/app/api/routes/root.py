"""Public endpoints: welcome, liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import logging

import orjson
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from fastapi_app.app.api.deps import SettingsDep
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
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
    summary="Readiness: the store and the sink answer",
)
async def readiness_check(request: Request, settings: SettingsDep) -> Response:
    """200 when the receipt store and the sink both answer within the sink timeout."""
    service = getattr(request.app.state, "service", None)
    checks: dict[str, str] = {}
    if service is None:
        checks["service"] = "starting"
    else:
        for name, ping in (
            ("store", service.store.ping),
            (service.publisher.sink, service.publisher.ping),
        ):
            try:
                async with asyncio.timeout(settings.sink_timeout_s):
                    await ping()
                checks[name] = "ok"
            except Exception as exc:
                # The cause goes to the log: this endpoint answers without an API key.
                log.warning("readiness check %s failed: %r", name, exc)
                checks[name] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return Response(
        orjson.dumps({"status": "ready" if ready else "unavailable", "checks": checks}),
        status_code=200 if ready else 503,
        media_type="application/json",
        headers=None if ready else {"Retry-After": str(settings.retry_after_s)},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    """Metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
