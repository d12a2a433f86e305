"""Overload shedding: past a bound of requests in flight, a fast 503 with `Retry-After`.

Without it a flood of connections queues on the event loop and every request's latency grows
with the connection count. With it, the requests being served keep their latency and the rest
get an answer at once that tells the client when to come back (`ErrorResponse` shape).
"""

from __future__ import annotations

import orjson
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

SHED = Counter(
    "ingestor_shed_requests_total",
    "Requests answered 503 at once because INGESTOR_MAX_CONCURRENCY requests were in flight.",
    ["method"],
)

#: Never shed: probes and scrapes must answer while the API is saturated.
EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})


class ConcurrencyLimitMiddleware:
    """Pure ASGI: serve at most `limit` HTTP requests at once; answer the others 503 at once."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_s: int) -> None:
        """Wrap `app`."""
        self.app = app
        self._limit = limit
        self._inflight = 0
        self._body = orjson.dumps(
            {
                "message": f"the ingestor is at capacity ({limit} requests in flight); "
                "retry after the Retry-After delay",
                "detail": [],
            }
        )
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, or shed it when the bound is reached."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self._inflight >= self._limit:
            SHED.labels(scope["method"]).inc()
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            return
        self._inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._inflight -= 1
