"""The native `prometheus` service (Debian's Prometheus) as `dataplatform up` runs it: its
rendered config passes promtool, it binds loopback, loads the SLO rules, scrapes the platform's
metrics endpoints and evaluates the recording rules on what it scraped; `dataplatform report`
renders every dashboard panel from it, checked in headless Chromium.

Runs its own Prometheus on a free port in a temporary data folder (never the platform's 9090),
with the lake exporter's real metrics served from this process.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import start_http_server

from dataplatform import samples, settings
from dataplatform.contracts import TRANSACTIONS
from dataplatform.exporter.lake import BACKLOG
from dataplatform.native.base import Context, wait_until
from dataplatform.native.services import SERVICES
from dataplatform.observability.dashboards import DASHBOARDS
from dataplatform.observability.report import build_report
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app
from pyspark_jobs import landing_metrics
from tests.browser import chromium
from tests.integration.native_support import clear_settings, free_port

TX = "/ingest-financial-transaction/"
TX_BATCH = "/v1/transactions/batch"


@pytest.fixture
def prometheus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int, int]]:
    """A native Prometheus started from the service definition; yields (base URL, exporter
    port, landing port): nothing listens on either until a test serves its metrics there."""
    exporter_port, landing_port = free_port(), free_port()
    monkeypatch.setenv("DATAPLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PROMETHEUS_PORT", str(free_port()))
    monkeypatch.setenv("PROMETHEUS_SCRAPE_INTERVAL", "1s")
    monkeypatch.setenv("EXPORTER_METRICS_PORT", str(exporter_port))
    monkeypatch.setenv("INGESTOR_PORT", str(free_port()))  # nothing listens: target down
    monkeypatch.setenv("KAFKA_JMX_EXPORTER_PORT", str(free_port()))  # nor here
    monkeypatch.setenv("STATSD_EXPORTER_PORT", str(free_port()))  # nor here
    monkeypatch.setenv("LAKEHOUSE_METRICS_PORT", str(landing_port))
    clear_settings()
    ctx = Context.load("advanced")
    service = SERVICES["prometheus"]
    assert all(check(ctx) is None for check in service.preflight)
    service.prepare(ctx)  # type: ignore[misc]
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(service.command(ctx), stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: service.probe(ctx), timeout_s=60), (
            tmp_path / "prometheus.log"
        ).read_text()
        yield settings.get_prometheus_settings().base_url, exporter_port, landing_port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        monkeypatch.undo()
        clear_settings()


def _query(base_url: str, promql: str) -> list[dict]:
    response = httpx.get(f"{base_url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_native_prometheus_loads_slo_rules_and_scrapes_platform(
    prometheus: tuple[str, int, int],
) -> None:
    base_url, exporter_port, landing_port = prometheus
    assert base_url.startswith("http://127.0.0.1:")
    # This process's registry stands in for the lake exporter's and the landing job's.
    start_http_server(exporter_port, addr="127.0.0.1")
    start_http_server(landing_port, addr="127.0.0.1")
    BACKLOG.labels("transactions").set(12345)
    landing_metrics.declare_entity(TRANSACTIONS)

    groups = httpx.get(f"{base_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    alerts = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"
    }
    assert {"IngestLatencyP99High", "ConsumerLagHigh", "IngestorDown"} <= alerts

    deadline = time.monotonic() + 60
    lag: list[dict] = []
    while time.monotonic() < deadline and not lag:
        lag = _query(base_url, "platform:consumer_lag_records:max")
        time.sleep(1)
    assert lag and float(lag[0]["value"][1]) == 12345

    up = {s["metric"]["job"]: s["value"][1] for s in _query(base_url, "up")}
    assert up == {
        "prometheus": "1",
        "lake-exporter": "1",
        "ingestor": "0",
        "landing": "1",
        "kafka": "0",
        "airflow": "0",
    }
    landed = _query(base_url, 'landing_records_total{job="landing"}')
    assert {(s["metric"]["entity"], s["metric"]["table"]) for s in landed} >= {
        ("finance.transactions", "bronze"),
        ("finance.transactions", "quarantine"),
    }


def test_report_renders_every_panel_from_real_prometheus(
    prometheus: tuple[str, int, int], tmp_path: Path
) -> None:
    base_url, exporter_port, _ = prometheus
    # This process's registry (the ingestor's and the lake exporter's metrics) is the target.
    start_http_server(exporter_port, addr="127.0.0.1")
    store, publisher = MemoryStore(), MemoryPublisher()
    app = create_app(IngestorSettings(_env_file=None), store=store, publisher=publisher)
    rng = random.Random(3)
    with TestClient(app, headers={"X-API-Key": store.add_api_key()}) as client:
        for _ in range(8):
            assert client.post(TX, json=samples.transaction(rng)).status_code == 200
            # A batch with one bad record: the edge rejects it (counted), accepts the other.
            batch = [samples.transaction(rng), samples.invalid("transactions", rng)[0]]
            assert client.post(TX_BATCH, json=batch).status_code == 200
            time.sleep(0.5)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _query(
        base_url, "ingestor:records_rejected:ratio_5m"
    ):
        time.sleep(1)

    out = build_report(base_url, tmp_path / "report.html", range_s=300)

    dom = chromium(tmp_path, out.as_uri(), "--dump-dom", window="1400,3000")
    figures = re.findall(r'<figure class="panel" id="([^"]+)"[^>]*data-series="(\d+)"', dom)
    expected = {f"{spec.uid}-{i}" for spec in DASHBOARDS for i in range(len(spec.panels))}
    assert {panel for panel, _ in figures} == expected
    with_data = {panel for panel, series in figures if int(series) > 0}
    # Panels fed by the traffic above (the rest need the full platform: e2e acceptance).
    assert {"dp-platform-health-0", "dp-ingestion-0", "dp-ingestion-3"} <= with_data
    shot = tmp_path / "report.png"
    chromium(tmp_path, out.as_uri(), f"--screenshot={shot}", window="1400,3000")
    assert shot.stat().st_size > 10_000
