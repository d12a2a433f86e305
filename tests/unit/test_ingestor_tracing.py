"""OpenTelemetry in the ingestor: spans from the SDK's in-memory exporter, the Kafka produce span
and the `traceparent` header it hands to Kafka (librdkafka's built-in mock broker: a real client
speaking the Kafka protocol, no broker process), the OTEL_* configuration and the log lines."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from dataplatform import samples
from dataplatform.contracts import ENTITIES
from dataplatform.logs import JsonFormatter
from dataplatform.settings import IngestorSettings, KafkaSettings
from fastapi_app.app.core.kafka import KafkaPublisher
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.core.telemetry import TracingConfigError, build_tracer_provider, span_exporters
from fastapi_app.app.main import create_app
from fastapi_app.testing import mock_cluster_topic_ids

TX = "/ingest-financial-transaction/"
TX_BATCH = "/v1/transactions/batch"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)


@pytest.fixture
def mock_kafka() -> Iterator[str]:
    """librdkafka's mock cluster (one broker on a loopback port) with the platform's topics."""
    holder = Producer({"test.mock.num.brokers": 1, "log_level": 0})
    for entity in ENTITIES:  # the mock broker creates a topic on first produce
        holder.produce(entity.topic, b"{}")
    assert holder.flush(10) == 0
    broker = next(iter(holder.list_topics(timeout=5).brokers.values()))
    yield f"{broker.host}:{broker.port}"
    del holder  # the cluster lives as long as its client


def _only(spans: InMemorySpanExporter, kind: SpanKind) -> ReadableSpan:
    found = [span for span in spans.get_finished_spans() if span.kind == kind]
    assert len(found) == 1, [span.name for span in spans.get_finished_spans()]
    return found[0]


def _hex(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    return format_trace_id(context.trace_id), format_span_id(context.span_id)


def _client(provider: TracerProvider, publisher: object, store: MemoryStore) -> TestClient:
    app = create_app(
        IngestorSettings(_env_file=None), store=store, publisher=publisher, tracer_provider=provider
    )
    return TestClient(app, headers={"X-API-Key": store.add_api_key()})


def test_ingest_request_makes_server_span_continuing_client_trace(
    provider: TracerProvider, spans: InMemorySpanExporter, rng: random.Random
) -> None:
    store, publisher = MemoryStore(), MemoryPublisher()
    with _client(provider, publisher, store) as client:
        response = client.post(
            TX, json=samples.transaction(rng), headers={"traceparent": CLIENT_TRACEPARENT}
        )
    assert response.status_code == 200
    server = _only(spans, SpanKind.SERVER)
    assert server.name == f"POST {TX}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == TX
    assert _hex(server)[0] == CLIENT_TRACE
    assert server.parent is not None
    assert format_span_id(server.parent.span_id) == CLIENT_SPAN
    # The sink is handed the server span's own context.
    assert publisher.messages[0].headers["traceparent"] == "00-{}-{}-01".format(*_hex(server))


def test_health_and_metrics_make_no_spans(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    with _client(provider, MemoryPublisher(), MemoryStore()) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200
    assert spans.get_finished_spans() == ()


def test_rejected_request_span_records_client_error(
    provider: TracerProvider, spans: InMemorySpanExporter, rng: random.Random
) -> None:
    with _client(provider, MemoryPublisher(), MemoryStore()) as client:
        response = client.post(TX, json=samples.invalid("transactions", rng)[0])
    assert response.status_code == 422
    server = _only(spans, SpanKind.SERVER)
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 422


def test_kafka_publish_makes_producer_span_named_in_record_headers(
    provider: TracerProvider, spans: InMemorySpanExporter, mock_kafka: str, rng: random.Random
) -> None:
    settings = IngestorSettings(_env_file=None, sink="kafka", sink_timeout_s=10)
    publisher = KafkaPublisher(
        KafkaSettings(_env_file=None, bootstrap_servers=mock_kafka),
        settings,
        tracer_provider=provider,
        read_topic_ids=mock_cluster_topic_ids,
    )
    store = MemoryStore()
    app = create_app(settings, store=store, publisher=publisher, tracer_provider=provider)
    with TestClient(app, headers={"X-API-Key": store.add_api_key()}) as client:
        response = client.post(
            TX_BATCH,
            json=[samples.transaction(rng) for _ in range(3)],
            headers={"traceparent": CLIENT_TRACEPARENT},
        )
    assert response.status_code == 200, response.text

    server = _only(spans, SpanKind.SERVER)
    producer = _only(spans, SpanKind.PRODUCER)
    topic = "finance.transactions.v1"
    assert producer.name == f"send {topic}"
    assert producer.attributes is not None
    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.name"] == topic
    assert producer.attributes["messaging.batch.message_count"] == 3
    assert producer.status.status_code != StatusCode.ERROR
    assert producer.parent is not None
    assert producer.parent.span_id == server.get_span_context().span_id
    assert _hex(producer)[0] == _hex(server)[0] == CLIENT_TRACE

    consumer = Consumer(
        {
            "bootstrap.servers": mock_kafka,
            "group.id": "tracing-test",
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    headers = []
    try:
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None or message.error() or message.value() == b"{}":
                continue
            headers.append(dict(message.headers() or []))
            if len(headers) == 3:
                break
    finally:
        consumer.close()
    assert len(headers) == 3
    expected = "00-{}-{}-01".format(*_hex(producer)).encode()
    assert {h["traceparent"] for h in headers} == {expected}


def test_json_log_line_carries_current_span_ids(provider: TracerProvider) -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
    with provider.get_tracer("test").start_as_current_span("work") as span:
        line = json.loads(JsonFormatter().format(record))
    context = span.get_span_context()
    assert line["trace_id"] == format_trace_id(context.trace_id)
    assert line["span_id"] == format_span_id(context.span_id)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


def test_span_exporters_default_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert span_exporters() == []


def test_span_exporters_otlp_uses_standard_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:14318")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    otlp, console = span_exporters()
    assert isinstance(otlp, OTLPSpanExporter)
    assert otlp._endpoint == "http://127.0.0.1:14318/v1/traces"
    assert isinstance(console, ConsoleSpanExporter)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "supports otlp, console or none"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf only"),
    ],
)
def test_span_exporters_unsupported_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv(variable, value)
    with pytest.raises(TracingConfigError, match=problem):
        span_exporters()


def test_tracer_provider_service_name_defaults_to_ingestor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert build_tracer_provider().resource.attributes["service.name"] == "ingestor"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ingestor-eu")
    assert build_tracer_provider().resource.attributes["service.name"] == "ingestor-eu"
