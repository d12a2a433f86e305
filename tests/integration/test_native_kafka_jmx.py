"""The native Kafka broker's JMX metrics: the `kafka` service definition starts the broker with
the Prometheus JMX exporter agent (`.jars/jmx`, `observability/kafka-jmx.yml`), and its
`/metrics` serves every `kafka_*` series a dashboard panel reads, per topic, after real produces.

Runs its own broker (the service's own prepare and command) on free ports in a temporary data
folder, never the platform's; about 30 s, most of it the JVM starting.
"""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from dataplatform.clients.kafka import ensure_topics, producer_config
from dataplatform.native.base import Context, wait_until
from dataplatform.native.services import SERVICES
from dataplatform.observability.dashboards import DASHBOARDS
from tests.factories import unique
from tests.integration.native_support import clear_settings, free_port, free_port_pair
from tests.unit.test_dashboard_metrics import metric_names


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Context, str]]:
    """A broker started from the `kafka` service definition; yields it and its metrics URL."""
    jmx_port = free_port()
    monkeypatch.setenv("DATAPLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port_pair()}")
    monkeypatch.setenv("KAFKA_JMX_EXPORTER_PORT", str(jmx_port))
    monkeypatch.setenv(
        "KAFKA_CLUSTER_ID", base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    )
    clear_settings()
    ctx = Context.load("intermediate")
    service = SERVICES["kafka"]
    assert all(check(ctx) is None for check in service.preflight)
    service.prepare(ctx)  # type: ignore[misc]
    command = service.command(ctx)
    assert any(arg.startswith("-javaagent:") for arg in command), command
    log_path = tmp_path / "kafka.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert wait_until(lambda: service.probe(ctx), timeout_s=120), log_path.read_text()
            yield ctx, f"http://127.0.0.1:{jmx_port}/metrics"
        finally:
            process.terminate()
            process.wait(timeout=60)
            monkeypatch.undo()
            clear_settings()


def _kafka_panel_metrics() -> set[str]:
    return {
        name
        for spec in DASHBOARDS
        for panel in spec.panels
        for name in metric_names(panel.expr)
        if name.startswith("kafka_")
    }


def test_native_kafka_serves_jmx_metrics_of_every_kafka_panel(
    broker: tuple[Context, str],
) -> None:
    ctx, metrics_url = broker
    topic = unique("tests.jmx")
    ensure_topics(ctx.kafka, [topic])
    producer = Producer(producer_config(ctx.kafka))
    for i in range(25):
        producer.produce(topic, key=f"k{i}".encode(), value=b'{"n": %d}' % i)
    assert producer.flush(30) == 0

    def messages_in() -> float:
        text = httpx.get(metrics_url, timeout=10).text
        match = re.search(
            rf'^kafka_server_brokertopicmetrics_messagesin_total\{{[^}}]*topic="{re.escape(topic)}"'
            r"[^}]*\} (\S+)$",
            text,
            re.M,
        )
        return float(match.group(1)) if match else 0.0

    assert wait_until(lambda: messages_in() >= 25, timeout_s=30), "topic's messages-in not served"
    text = httpx.get(metrics_url, timeout=10).text
    served = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    # The broker-wide series (no topic label) the bytes-in panel reads.
    assert re.search(r"^kafka_server_brokertopicmetrics_bytesin_total(\{\})? [1-9]", text, re.M)
    panels = _kafka_panel_metrics()
    assert panels, "no dashboard panel reads the broker's metrics"
    assert panels <= served, f"panels read metrics the agent does not serve: {panels - served}"
    # The agent reads only the MBeans the config names: no per-request or log-segment series.
    assert not [name for name in served if name.startswith("kafka_network_")]
