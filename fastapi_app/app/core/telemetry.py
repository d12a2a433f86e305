"""Logs, metrics and traces of the ingestor.

* OpenTelemetry traces, configured by the standard `OTEL_*` variables: a server span per
  request (continuing the client's W3C `traceparent`), whose context the Kafka produce span and
  the `traceparent` header on every record continue;
* JSON log lines carrying the current span's trace and span ids (`dataplatform.logs`, shared
  with the other processes);
* Prometheus metrics: requests by route and status, latency, batch sizes, sink latency.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --------------------------------------------------------------------------- traces

#: `service.name` when OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) does not name one.
DEFAULT_SERVICE_NAME = "ingestor"

#: OTEL_TRACES_EXPORTER values and the exporter entry points they load (the SDK's own registry,
#: group `opentelemetry_traces_exporter`). Only OTLP over HTTP/protobuf is installed: it is the
#: OTLP default protocol and needs no gRPC runtime.
_EXPORTER_ENTRY_POINTS = {"otlp": "otlp_proto_http", "console": "console"}


class TracingConfigError(ValueError):
    """An OTEL_* variable names something the ingestor cannot do; the message says what."""


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The W3C trace context of the current span: its trace, its id, its sampling flag."""

    trace_id: str
    span_id: str
    sampled: bool

    @property
    def traceparent(self) -> str:
        """The `traceparent` header value naming this span as the parent."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def span_exporters() -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (comma-separated; default `none`).

    The OpenTelemetry default is `otlp`; the ingestor defaults to `none` so that a platform
    without a collector does not retry exports to a port nobody listens on. The exporters read
    their own variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS, ...).

    Raises:
        TracingConfigError: An unknown exporter, or an OTLP protocol other than http/protobuf.
    """
    # The standard variables are read here, in one place, as the OpenTelemetry SDK reads them.
    names = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )
    exporters: list[SpanExporter] = []
    for name in (part.strip() for part in names.split(",")):
        if name in ("", "none"):
            continue
        if name not in _EXPORTER_ENTRY_POINTS:
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER={names!r}: the ingestor supports otlp, console or none"
            )
        if name == "otlp" and protocol != "http/protobuf":
            raise TracingConfigError(
                f"OTLP protocol {protocol!r}: the ingestor exports traces over http/protobuf "
                "only (set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, port 4318)"
            )
        (point,) = entry_points(
            group="opentelemetry_traces_exporter", name=_EXPORTER_ENTRY_POINTS[name]
        )
        exporters.append(point.load()())
    return exporters


def build_tracer_provider(*exporters: SpanExporter) -> TracerProvider:
    """A tracer provider configured by the standard OTEL_* variables.

    The resource comes from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (service name
    `ingestor` by default), the sampler from OTEL_TRACES_SAMPLER(_ARG) (parent-based always-on
    by default), batching from OTEL_BSP_*. Spans are made even with no exporter: their ids are
    the trace context of the logs and of the Kafka headers.

    Args:
        exporters: Where spans go, each behind a batch processor.
    """
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


@cache
def default_tracer_provider() -> TracerProvider:
    """The process's tracer provider (OTEL_* variables), also installed as the global one."""
    provider = build_tracer_provider(*span_exporters())
    trace.set_tracer_provider(provider)
    return provider


def current_trace() -> TraceContext:
    """The trace context of the current span (the request's server span while serving one).

    Outside any span (no request, or an excluded route) new ids are made, so a record always
    carries a valid `traceparent`.
    """
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        ids = RandomIdGenerator()
        return TraceContext(
            format_trace_id(ids.generate_trace_id()), format_span_id(ids.generate_span_id()), True
        )
    return TraceContext(
        format_trace_id(context.trace_id),
        format_span_id(context.span_id),
        context.trace_flags.sampled,
    )


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
    "Time of each write to the sink (publish).",
    ["sink", "operation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_ERRORS = Counter(
    "ingestor_sink_errors_total",
    "Requests refused because the sink or the store failed, timed out or was full.",
    ["sink", "reason"],
)


def metrics_dir() -> str | None:
    """Where the workers' metric files are when several workers serve the port.

    prometheus_client's own variable: `dataplatform run ingestor` sets it for its workers, which
    read it when they import prometheus_client; None with one worker.
    """
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


INFLIGHT = Gauge(
    "ingestor_inflight_records",
    "Records admitted and not yet answered.",
    # With several workers, `/metrics` reports the sum over the live ones.
    multiprocess_mode="livesum",
)


class TelemetryMiddleware:
    """Pure ASGI middleware: request metrics (FastAPI's own telemetry makes the spans).

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
