"""Logs, metrics and trace context of the ingestor.

* JSON log lines carrying the request's trace id (and ingest ids where the caller adds them);
* Prometheus metrics: requests by route and status, latency, batch sizes, sink latency;
* W3C `traceparent`: continued from the client when it sends one, started otherwise, and
  forwarded to Kafka on every record.
"""

from __future__ import annotations

import contextvars
import logging
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --------------------------------------------------------------------------- trace context


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The W3C trace context of one request: the client's trace, our span."""

    trace_id: str
    span_id: str
    sampled: bool

    @property
    def traceparent(self) -> str:
        """The `traceparent` header value naming our span as the parent."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


_TRACE: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("trace", default=None)
_HEX = frozenset("0123456789abcdef")
# Ids only need to be unique, not unpredictable; `random` is ~10x cheaper than `secrets`.
_rng = random.Random()  # noqa: S311


def _hex_id(bits: int) -> str:
    return f"{_rng.getrandbits(bits):0{bits // 4}x}"


def parse_traceparent(value: str | None) -> TraceContext:
    """Continue the client's trace from a valid `traceparent`, else start a new one."""
    span_id = _hex_id(64)
    if value:
        parts = value.strip().split("-")
        if (
            len(parts) >= 4
            and len(parts[0]) == 2
            and parts[0] != "ff"
            and len(parts[1]) == 32
            and len(parts[2]) == 16
            and len(parts[3]) == 2
            and set(parts[1]) <= _HEX
            and set(parts[2]) <= _HEX
            and set(parts[3]) <= _HEX
            and parts[1] != "0" * 32
            and parts[2] != "0" * 16
        ):
            return TraceContext(parts[1], span_id, bool(int(parts[3], 16) & 1))
    return TraceContext(_hex_id(128), span_id, True)


def current_trace() -> TraceContext:
    """The trace context of the request being served (a fresh one outside a request)."""
    trace = _TRACE.get()
    if trace is None:
        trace = parse_traceparent(None)
        _TRACE.set(trace)
    return trace


# --------------------------------------------------------------------------- logging


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace id and extra fields.

    Extra fields are passed as `log.info("...", extra={"fields": {...}})`.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as a JSON line."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace = _TRACE.get()
        if trace is not None:
            entry["trace_id"] = trace.trace_id
            entry["span_id"] = trace.span_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """Send every logger (ours, uvicorn's, librdkafka's) as JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


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
        token = _TRACE.set(parse_traceparent(traceparent))
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
            _TRACE.reset(token)
