"""The hot ingest routes served without FastAPI's routing, request and response machinery.

FastAPI's routing and endpoint plumbing (route matching over every route, the request-handler
wrapper, dependency solving, the exception middleware) was half of a single record's CPU
(docs/BENCHMARKS.md). `IngestFastPath` is a pure-ASGI middleware that answers exactly the hot
ingest routes — `POST` to a single-record or batch path — by looking the path up in a dict and
calling the route's own endpoint, with the same error answers (`errors.refusal_response`).
FastAPI keeps the routes: the OpenAPI spec documents them, and every other method or path
(`/docs`, `GET /ingest/{id}`, `/health`, `/metrics`, a trailing-slash redirect, a 405) falls
through to it.

Each request it serves gets its server span here, named and attributed as FastAPI's own
(`POST <route>`, `http.route`, `http.response.status_code`), continuing the client's W3C
`traceparent`, and current while the endpoint runs: the sink hands its context on to Kafka.
FastAPI's telemetry leaves these requests alone (`HotRoutes.match` is in its `exclude`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from fastapi.routing import APIRoute
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode, TracerProvider
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_app.app.api.errors import ApiError, refusal_response
from fastapi_app.app.services.errors import IngestError

Endpoint = Callable[[Request], Awaitable[Response]]


class HotRoutes:
    """The `POST` routes the fast path serves, by path."""

    def __init__(self, routes: Iterable[APIRoute]) -> None:
        """Keep the `POST` routes among `routes`; their endpoints take only the request."""
        self._by_path = {route.path: route for route in routes if "POST" in (route.methods or ())}

    def match(self, scope: Scope) -> APIRoute | None:
        """The route serving `scope`, or None to leave it to FastAPI.

        An app under a `root_path` is left to FastAPI, which strips the prefix before matching.
        """
        if scope.get("method") != "POST" or scope.get("root_path"):
            return None
        return self._by_path.get(scope.get("path", ""))


class IngestFastPath:
    """Pure ASGI: serve the hot ingest routes directly, pass everything else on."""

    def __init__(self, app: ASGIApp, *, routes: HotRoutes, tracer_provider: TracerProvider) -> None:
        """Wrap `app` (FastAPI's stack), serving `routes` with spans from `tracer_provider`."""
        self.app = app
        self._routes = routes
        self._tracer = tracer_provider.get_tracer(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request: a hot route here, anything else by FastAPI."""
        route = self._routes.match(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        # What FastAPI's routing would have put there: the Prometheus middleware labels the
        # request with the route template, and the service binds Idempotency-Keys per route.
        scope["route"] = route
        carrier = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        parent = propagate.extract(carrier)
        span = self._tracer.start_span(
            f"POST {route.path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_span_attributes(scope, route.path),
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            endpoint = cast(Endpoint, route.endpoint)
            try:
                response = await endpoint(Request(scope, receive))
            except (ApiError, IngestError) as exc:
                response = refusal_response(exc)
            status = response.status_code
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(StatusCode.ERROR)
            await response(scope, receive, send)
        except BaseException as exc:
            # Unhandled: Starlette's outermost middleware answers 500, as for any route.
            kind = type(exc)
            span.set_attribute("error.type", f"{kind.__module__}.{kind.__qualname__}")
            span.set_status(StatusCode.ERROR)
            raise
        finally:
            otel_context.detach(token)
            span.end()


def _span_attributes(scope: Scope, route: str) -> dict[str, Any]:
    """The HTTP server span's attributes (OpenTelemetry semantic conventions) as FastAPI sets
    them, except `server.*`, taken from the listening socket rather than the Host header, and
    no `url.query` (these routes take no parameters)."""
    attributes: dict[str, Any] = {
        "http.request.method": "POST",
        "http.route": route,
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
    }
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    return attributes
