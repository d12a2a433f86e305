"""One request followed by its trace id: the ingestor (its real OTLP/HTTP exporter, configured by
OTEL_* variables as the advanced track sets them) sends its server span and its Kafka produce
span to the native `otel-collector` service (tools/otelcol running observability/otelcol.yaml),
whose output shows both under the client's trace id.

The collector runs on free loopback ports; Kafka is librdkafka's mock broker (the platform's
broker is not needed to make a produce span).
"""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from dataplatform import samples
from dataplatform.contracts import ENTITIES
from dataplatform.native.base import Context, wait_until
from dataplatform.native.services import SERVICES, track_environment
from dataplatform.settings import IngestorSettings, KafkaSettings
from fastapi_app.app.core.kafka import KafkaPublisher
from fastapi_app.app.core.memory import MemoryStore
from fastapi_app.app.core.telemetry import build_tracer_provider, span_exporters
from fastapi_app.app.main import create_app
from fastapi_app.testing import mock_cluster_topic_ids
from tests.integration.native_support import clear_settings, free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The native collector on free ports; yields its log file."""
    monkeypatch.setenv("OTELCOL_GRPC_PORT", str(free_port()))
    monkeypatch.setenv("OTELCOL_HTTP_PORT", str(free_port()))
    clear_settings()
    ctx = Context.load("advanced")
    service = SERVICES["otel-collector"]
    problems = [problem for check in service.preflight if (problem := check(ctx))]
    assert not problems, problems
    log_path = tmp_path / "otelcol.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        service.command(ctx),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", **track_environment(ctx, service)},
    )
    try:
        assert wait_until(lambda: service.probe(ctx), timeout_s=60), log_path.read_text()
        # The ingestor's OTEL_* variables as the advanced track sets them.
        for name, value in track_environment(ctx, SERVICES["ingestor"]).items():
            if name.startswith("OTEL_"):
                monkeypatch.setenv(name, value)
        yield log_path
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        monkeypatch.undo()
        clear_settings()


@pytest.fixture
def mock_kafka() -> Iterator[str]:
    holder = Producer({"test.mock.num.brokers": 1, "log_level": 0})
    for entity in ENTITIES:
        holder.produce(entity.topic, b"{}")
    assert holder.flush(10) == 0
    broker = next(iter(holder.list_topics(timeout=5).brokers.values()))
    yield f"{broker.host}:{broker.port}"


def test_collector_output_has_request_and_kafka_spans_of_one_trace(
    collector: Path, mock_kafka: str
) -> None:
    provider = build_tracer_provider(*span_exporters())
    settings_ = IngestorSettings(_env_file=None, sink="kafka", sink_timeout_s=10)
    publisher = KafkaPublisher(
        KafkaSettings(_env_file=None, bootstrap_servers=mock_kafka),
        settings_,
        tracer_provider=provider,
        read_topic_ids=mock_cluster_topic_ids,
    )
    store = MemoryStore()
    app = create_app(settings_, store=store, publisher=publisher, tracer_provider=provider)
    with TestClient(app, headers={"X-API-Key": store.add_api_key()}) as client:
        response = client.post(
            "/ingest-financial-transaction/",
            json=samples.transaction(random.Random(1)),
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
    assert response.status_code == 200, response.text
    assert provider.force_flush(10_000)

    def spans_logged() -> bool:
        text = collector.read_text()
        return "send finance.transactions.v1" in text and "POST /ingest-financial" in text

    assert wait_until(spans_logged, timeout_s=30), collector.read_text()[-3000:]
    # The debug exporter prints each span as a block: "Span #n", then "Trace ID : ...",
    # "Name : ...", its attributes.
    spans = {}
    for block in collector.read_text().split("Span #")[1:]:
        fields = dict(re.findall(r"^\s*(Trace ID|Name|Kind)\s*: (.*)$", block, re.M))
        spans[fields["Name"].strip()] = (fields["Trace ID"].strip(), fields["Kind"].strip())
    assert spans["POST /ingest-financial-transaction/"] == (TRACE_ID, "Server")
    assert spans["send finance.transactions.v1"] == (TRACE_ID, "Producer")
    assert "service.name: Str(ingestor)" in collector.read_text()
    provider.shutdown()
