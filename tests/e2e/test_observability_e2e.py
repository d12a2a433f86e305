"""Every dashboard panel has data on the real advanced track, and one request is followed by
its trace id from the collector's spans to its bronze row.

Drives real traffic through the platform's own ingestor (the one its Prometheus scrapes):
accepted single records and batches of both entities, records refused at the edge (422), an
unauthenticated call (401), load shed with 503 (concurrent batches beyond the ingestor's
in-flight bound), a 503 because the sink is down (the platform's Kafka stopped for a moment,
then started again), and a contract-violating message produced straight to the entity's topic,
which landing must put in quarantine. Then it
runs every panel query of every dashboard (`dataplatform.observability.dashboards.DASHBOARDS`,
the definitions Grafana's JSON and the report are built from) against the real Prometheus HTTP
API and fails on any that returns no series. The Orchestration panels read Airflow's metrics:
they need a DAG run since the platform's StatsD exporter started (the suite's Airflow tests,
tests/integration/test_airflow_*.py, run before it; run alone, trigger one first).

The trace test posts one record with a W3C `traceparent` of its own and finds that trace id on
the collector's HTTP server and Kafka producer spans (its debug exporter's log) and on the
record's row in the platform's bronze table, written by the platform's landing job.

Runs on the advanced track only (the one with Prometheus and the collector); it writes to the
real topics and tables, keyed by records of its own.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from dataplatform import samples
from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.lake import Lake, quarantine_path
from dataplatform.native.base import Context
from dataplatform.observability.dashboards import DASHBOARDS, Panel
from dataplatform.settings import (
    Track,
    get_ingestor_settings,
    get_prometheus_settings,
)
from fastapi_app.testing import create_api_key
from tests.integration.lakehouse_support import delta_rs_rows, produce, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TX = "/ingest-financial-transaction/"
CLAIM = "/ingest-insurance-claim/"
TX_BATCH = "/v1/transactions/batch"
CLAIM_BATCH = "/v1/claims/batch"

#: Concurrent full batches per attempt to pass the in-flight bound (10,000 records by default).
SHED_CONCURRENCY = 24
SHED_ATTEMPTS = 3


@pytest.fixture(scope="module")
def advanced(test_track: Track, platform: Context) -> Context:
    """The running advanced track (Prometheus is part of it only)."""
    if test_track != "advanced":
        pytest.skip(f"Prometheus runs on the advanced track only (this is {test_track})")
    return platform


@pytest.fixture(scope="module")
def api(advanced: Context) -> Iterator[httpx.Client]:
    """The platform's own ingestor with a new API key of its real schema."""
    ingestor = get_ingestor_settings()
    key = create_api_key(advanced.postgres, ingestor.db_schema)
    with httpx.Client(base_url=ingestor.base_url, headers={"X-API-Key": key}, timeout=60) as client:
        yield client


def _query(promql: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{get_prometheus_settings().base_url}/api/v1/query", params={"query": promql}, timeout=10
    )
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def _shed_round(api: httpx.Client, rng: random.Random) -> list[int]:
    """Post `SHED_CONCURRENCY` full batches at once; return their status codes."""
    size = get_ingestor_settings().max_batch_records
    bodies = [[samples.transaction(rng) for _ in range(size)] for _ in range(SHED_CONCURRENCY)]
    async with httpx.AsyncClient(
        base_url=str(api.base_url), headers=dict(api.headers), timeout=120
    ) as client:
        responses = await asyncio.gather(*(client.post(TX_BATCH, json=b) for b in bodies))
    return [response.status_code for response in responses]


def _drive_traffic(api: httpx.Client, rng: random.Random) -> None:
    for _ in range(5):
        assert api.post(TX, json=samples.transaction(rng)).status_code == 200
        assert api.post(CLAIM, json=samples.claim(rng)).status_code == 200
        for path, entity in ((TX_BATCH, "transactions"), (CLAIM_BATCH, "claims")):
            good = [samples.record(entity, rng) for _ in range(20)]  # type: ignore[arg-type]
            bad, _, _ = samples.invalid(entity, rng)  # type: ignore[arg-type]
            answer = api.post(path, json=[*good, bad])
            assert answer.status_code == 200, answer.text
        bad_single, _, _ = samples.invalid("transactions", rng)
        assert api.post(TX, json=bad_single).status_code == 422
        assert httpx.post(f"{api.base_url}{TX}", json=samples.transaction(rng)).status_code == 401


def _supervisorctl(*args: str) -> None:
    cli = Path(sys.executable).parent / "dataplatform"
    subprocess.run([str(cli), "supervisorctl", *args], check=True, capture_output=True, timeout=120)


def _sink_down_round(api: httpx.Client, rng: random.Random) -> None:
    """The platform's Kafka stopped: a record gets 503 naming the sink; accepted again after."""
    _supervisorctl("stop", "kafka")
    try:
        answer = api.post(TX, json=samples.transaction(rng))
    finally:
        _supervisorctl("start", "kafka")
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("Retry-After"), answer.headers
    assert answer.json()["detail"][0]["loc"][0] == "sink", answer.text
    wait_for(
        lambda: api.post(TX, json=samples.transaction(rng)).status_code == 200,
        180,
        "the ingestor accepting records again once Kafka is back",
        interval_s=3,
    )


def _panel_series(panel: Panel) -> int:
    return len(_query(panel.expr))


def test_run_every_dashboard_panel_query_returns_series_after_real_traffic(
    api: httpx.Client, advanced: Context
) -> None:
    rng = random.Random()
    run = uuid.uuid4().hex[:12]

    # A record that passes the edge's shape but not landing's contract check goes to
    # quarantine: produced straight to the topic, as a foreign producer would.
    violating = samples.transaction(rng, currency=f"Q{run}")
    produce(advanced.kafka, TRANSACTIONS.topic, [violating], key_field="transaction_id")

    _drive_traffic(api, rng)

    statuses: list[int] = []
    for _ in range(SHED_ATTEMPTS):
        statuses += asyncio.run(_shed_round(api, rng))
        if 503 in statuses:
            break
    assert 503 in statuses, f"no batch was shed: {sorted(set(statuses))}"
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    _sink_down_round(api, rng)

    # Traffic after the burst, so rates over the last minutes see both sides of it.
    _drive_traffic(api, rng)

    lake = Lake.load()
    quarantine = quarantine_path(TRANSACTIONS, "landing")
    wait_for(
        lambda: any(f"Q{run}" in (row["payload"] or "") for row in delta_rs_rows(lake, quarantine)),
        180,
        "the contract-violating record in landing's quarantine table",
        interval_s=5,
    )

    panels = [(spec.title, panel) for spec in DASHBOARDS for panel in spec.panels]
    assert len(panels) >= 15
    empty: list[str] = []
    deadline = time.monotonic() + 240
    while True:
        empty = [
            f"{board} / {panel.title}: {panel.expr}"
            for board, panel in panels
            if not _panel_series(panel)
        ]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(10)
    assert not empty, "panels without data:\n" + "\n".join(empty)
    # The sink-down refusal is counted apart from load shedding.
    reasons = {series["metric"]["reason"] for series in _query("ingestor_sink_errors_total > 0")}
    assert reasons - {"overloaded"}, f"no sink failure counted, only: {reasons}"
    # Both entities' records reached the ingestor's metrics.
    entities = {series["metric"]["entity"] for series in _query("ingestor_records_total")}
    assert {f"{e.domain}.{e.name}" for e in (TRANSACTIONS, CLAIMS)} <= entities


def _spans_of(log: str, trace_id: str) -> dict[str, str]:
    """`{span name: kind}` of the spans of `trace_id` in the collector's debug output."""
    spans = {}
    for block in log.split("Span #")[1:]:
        fields = dict(re.findall(r"^\s*(Trace ID|Name|Kind)\s*: (.*)$", block, re.M))
        if fields.get("Trace ID", "").strip() == trace_id:
            spans[fields["Name"].strip()] = fields["Kind"].strip()
    return spans


def _bronze_trace_ids(lake: Lake, record_key: str) -> list[str | None]:
    table = DeltaTable(
        lake.table("bronze", TRANSACTIONS, scheme="s3"),
        storage_options=lake.s3.delta_storage_options(),
    )
    today = datetime.now(UTC).date()
    rows = (
        table.to_pyarrow_dataset()
        .to_table(
            columns=["trace_id"],
            filter=(pc.field("ingest_date") == today) & (pc.field("record_key") == record_key),
        )
        .to_pylist()
    )
    return [row["trace_id"] for row in rows]


def test_follow_request_by_trace_id_to_collector_spans_and_bronze_row(
    api: httpx.Client, advanced: Context
) -> None:
    trace_id = uuid.uuid4().hex
    record = samples.transaction(random.Random())
    answer = api.post(
        TX, json=record, headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}
    )
    assert answer.status_code == 200, answer.text

    collector_log = advanced.runtime.logs_dir / "otel-collector.log"
    spans = wait_for(
        lambda: _spans_of(collector_log.read_text(errors="replace"), trace_id),
        60,
        f"spans of trace {trace_id} in {collector_log}",
        interval_s=2,
    )
    assert spans.get(f"POST {TX}") == "Server", spans
    assert spans.get(f"send {TRANSACTIONS.topic}") == "Producer", spans

    found = wait_for(
        lambda: _bronze_trace_ids(Lake.load(), record["transaction_id"]),
        180,
        "the record in bronze",
        interval_s=5,
    )
    assert found == [trace_id]
