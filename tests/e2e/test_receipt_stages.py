"""A receipt follows its record on the live platform: `durable` at once, `landed` once the
platform's landing job has committed it, with the reason when landing quarantined it, and
`curated` once a curation run processed the bronze version landing appended it to (or, when
curation quarantined it, `landed` with curation's reason).

No row is written per record (docs/API.md, receipts): the ingest id is the record's Kafka
coordinates signed for its API key, landing computes the same id for the bronze row and reports
its committed offsets. This test proves the three agree on the real ingestor, Kafka, Spark
landing and PostgreSQL, including for a record that only landing can refuse.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from confluent_kafka import KafkaError, Message, Producer

from dataplatform.clients.kafka import producer_config, topic_ids
from dataplatform.contracts import TRANSACTIONS
from dataplatform.db.apikeys import parse
from dataplatform.lake import Lake
from dataplatform.native.services import TRACK_SERVICES, Context
from dataplatform.settings import ReceiptSettings, get_ingestor_settings
from fastapi_app.testing import create_api_key
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TX = "/ingest-financial-transaction/"
#: Landing runs a micro-batch every few seconds; a loaded CI machine needs more.
LANDED_WITHIN_S = 300


@pytest.fixture(scope="module")
def api(platform: Context) -> Iterator[tuple[httpx.Client, str]]:
    """The platform's own ingestor, with a key of its own, and the key's id."""
    if "landing" not in TRACK_SERVICES[platform.track]:
        pytest.skip("receipts reach `landed` through Kafka landing on the Kafka tracks")
    ingestor = get_ingestor_settings()
    key = create_api_key(platform.postgres, ingestor.db_schema)
    parsed = parse(key)
    assert parsed is not None
    with httpx.Client(base_url=ingestor.base_url, headers={"X-API-Key": key}, timeout=30) as http:
        yield http, parsed[0]


def _landed(http: httpx.Client, ingest_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + LANDED_WITHIN_S
    while True:
        status = http.get(f"/ingest/{ingest_id}")
        assert status.status_code == 200, status.text
        if status.json()["status"] == "landed":
            return status.json()
        assert time.monotonic() < deadline, f"{ingest_id} not landed: {status.json()}"
        time.sleep(2)


def test_receipt_goes_durable_landed_curated_with_a_curation_run(
    api: tuple[httpx.Client, str],
) -> None:
    http, _ = api
    receipt = http.post(TX, json=factories.transaction()).json()
    assert receipt["status"] == "durable"
    landed = _landed(http, receipt["ingest_id"])
    # Curation reports the bronze version it processed through; the receipt compares it with
    # the version landing reported.
    _run_curation()
    status = _curated(http, receipt["ingest_id"])
    stages = {stage["stage"]: stage for stage in status["stages"]}
    assert list(stages) == ["accepted", "durable", "landed", "curated"]
    assert stages["landed"]["at"] == landed["stages"][-1]["at"]
    assert datetime.fromisoformat(stages["curated"]["at"]) > datetime.fromisoformat(
        stages["landed"]["at"]
    )
    assert stages["curated"]["where"] == "silver Delta table"


def _run_curation() -> None:
    """Curation of transactions, the job as Airflow runs it, on the platform's lake."""
    dataplatform = str(Path(sys.executable).with_name("dataplatform"))
    run = subprocess.run(
        [dataplatform, "run", "curation", "--entity", "finance/transactions"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]


def _curated(http: httpx.Client, ingest_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30  # the ingestor's progress cache keeps a report 1 s
    while (status := http.get(f"/ingest/{ingest_id}").json())["status"] != "curated":
        assert time.monotonic() < deadline, f"not curated after the run: {status}"
        time.sleep(1)
    body: dict[str, Any] = status
    return body


def test_receipt_of_a_record_curation_quarantined_gives_the_reason_not_curated(
    api: tuple[httpx.Client, str],
) -> None:
    http, _ = api
    # Accepted by the API and landing; the `drop` expectation `event_time_not_in_future`
    # refuses it in curation.
    good, bad = (
        http.post(TX, json=factories.transaction(**fields)).json()["ingest_id"]
        for fields in ({}, {"timestamp": "2099-01-01T00:00:00"})
    )
    _landed(http, good)
    _landed(http, bad)

    _run_curation()

    assert _curated(http, good)["stages"][-1]["where"] == "silver Delta table"
    status = http.get(f"/ingest/{bad}").json()
    quarantine = Lake.load(prefix="").delta_rs("quarantine/curation/finance/transactions")
    assert quarantine is not None
    rows = quarantine.to_pyarrow_table(columns=["ingest_id", "reason"]).to_pylist()
    [reason] = [row["reason"] for row in rows if row["ingest_id"] == bad]
    assert "event_time_not_in_future" in reason
    assert (status["status"], status["quarantine_reason"]) == ("landed", reason)
    assert [(s["stage"], s["where"]) for s in status["stages"]][-2:] == [
        ("landed", "bronze Delta table"),
        ("curated", f"quarantine: {reason}"),
    ]


def _bronze_ids(ids: set[str]) -> set[str]:
    table = Lake.load(prefix="").delta_rs("bronze/finance/transactions")
    assert table is not None
    data = table.to_pyarrow_table(columns=["ingest_id"])
    wanted = pa.array(sorted(ids), type=pa.string())
    return set(data.filter(pc.is_in(data["ingest_id"], value_set=wanted))["ingest_id"].to_pylist())


def test_receipt_reaches_landed_and_names_the_bronze_row(
    api: tuple[httpx.Client, str],
) -> None:
    http, _ = api
    receipts = [http.post(TX, json=factories.transaction()).json() for _ in range(3)]
    ids = [r["ingest_id"] for r in receipts]
    assert [r["status"] for r in receipts] == ["durable"] * 3

    landed = [_landed(http, ingest_id) for ingest_id in ids]

    assert [s["entity"] for s in landed] == ["finance.transactions"] * 3
    assert all(s["quarantine_reason"] is None for s in landed)
    assert [[st["stage"] for st in s["stages"]] for s in landed] == [
        ["accepted", "durable", "landed"]
    ] * 3
    # The receipt's id is the bronze row's id: landing computed the same one.
    assert _bronze_ids(set(ids)) == set(ids)


def test_receipt_of_a_record_landing_refused_gives_the_reason(
    api: tuple[httpx.Client, str], platform: Context
) -> None:
    http, key_id = api
    topic = TRANSACTIONS.topic
    topic_id = topic_ids(platform.kafka, [topic])[topic]
    assert topic_id is not None
    # A record the ingestor would refuse (422), produced straight to Kafka as the ingestor
    # would have, signed for this test's key: only landing can judge it.
    bad = {**factories.transaction(), "currency": "ZZZ"}
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        (errors.append(error) if error is not None else delivered.append(message))

    producer = Producer(producer_config(platform.kafka))
    producer.produce(
        topic,
        key=bad["transaction_id"].encode(),
        value=json.dumps(bad).encode(),
        headers=[("api_key_id", key_id.encode()), ("topic_id", topic_id.encode())],
        on_delivery=on_delivery,
    )
    assert producer.flush(30) == 0
    assert not errors
    [message] = delivered
    ingest_id = (
        ReceiptSettings()
        .ids()
        .kafka(
            topic_id,
            message.partition() or 0,
            message.offset() or 0,
            message.timestamp()[1],
            key_id,
        )
    )

    status = _landed(http, ingest_id)

    assert status["quarantine_reason"] is not None
    assert "currency" in status["quarantine_reason"]
    assert status["stages"][-1]["where"].startswith("quarantine: ")
    assert status["record_key"] is None
    # Another key never sees it.
    other = create_api_key(platform.postgres, get_ingestor_settings().db_schema)
    assert http.get(f"/ingest/{ingest_id}", headers={"X-API-Key": other}).status_code == 404
