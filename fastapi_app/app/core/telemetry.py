"""Metrics and trace context of the ingestor (JSON logs and the trace context: `dataplatform.logs`).

* Prometheus metrics: requests by route and status, latency, batch sizes, sink latency;
* W3C `traceparent`: continued from the client when it sends one, started otherwise, and
  forwarded to Kafka on every record.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dataplatform.logs import bind_trace, parse_traceparent, reset_trace

# --------------------------------------------------------------------------- metrics

REQUESTS = Counter(
    "ingestor_http_requests_total",
    "HTTP requests by route template, method and status code.",
    ["route", "method", "status"],
)
REQUEST_LATENCY = Histogram(
    "ingestor_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template.",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECORDS = Counter(
    "ingestor_records_total",
    "Records by entity and outcome (accepted, duplicate, rejected).",
    ["entity", "outcome"],
)
BATCH_SIZE = Histogram(
    "ingestor_batch_records",
    "Records per batch request.",
    ["entity"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
SINK_LATENCY = Histogram(
    "ingestor_sink_duration_seconds",
    "Time of each step against the store and the sink (reserve, publish, mark_durable).",
    ["sink", "operation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_ERRORS = Counter(
    "ingestor_sink_errors_total",
    "Requests refused because the sink or the store failed, timed out or was full.",
    ["sink", "reason"],
)
INFLIGHT = Gauge("ingestor_inflight_records", "Records admitted and not yet answered.")


class TelemetryMiddleware:
    """Pure ASGI middleware: trace context per request, request metrics.

    Pure ASGI rather than `BaseHTTPMiddleware`, which costs a task and a stream per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request, timing it and labelling it with its route template."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        traceparent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
                break
        token = bind_trace(parse_traceparent(traceparent))
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label so scanners cannot blow up the series count.
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(template, scope["method"], str(status)).inc()
            REQUEST_LATENCY.labels(template).observe(time.perf_counter() - started)
            reset_trace(token)
