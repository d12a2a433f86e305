"""SIGKILL of the ingestor, the Kafka broker and the landing job during a load of single-record
posts: every acknowledged record is in silver exactly once, with its exact amount.

The client behaves as a careful real one: every record carries an `Idempotency-Key` and is
retried on a connection error, a 503 or a 409 "in progress" until it is acknowledged. The test's
tables live under their own lake prefix; landing reads the real topic from the offsets it had
when the test started, and the assertions are keyed on the test's own transaction ids.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pyspark.sql import SparkSession

from dataplatform import samples
from dataplatform.contracts import TRANSACTIONS
from dataplatform.lake import Lake
from dataplatform.settings import KafkaSettings, PostgresSettings
from fastapi_app.testing import LiveIngestor, create_api_key, live_ingestor, temporary_schema
from pyspark_jobs import curation
from tests.integration.lakehouse_support import (
    JobProcess,
    broker_pid,
    broker_restored,
    broker_up,
    delta_rs_rows,
    end_offsets,
    lake,
    lake_spark,
    wait_for,
)

__all__ = ["broker_restored", "lake", "lake_spark"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

TX = "/ingest-financial-transaction/"
RECORDS = 900
RATE_PER_S = 30


class _Client:
    """Posts records one by one, each retried under its own Idempotency-Key until it is acked."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.acked: dict[str, str] = {}  # transaction_id -> amount text
        self.errors: Counter[str] = Counter()

    def send(self, record_text: str, transaction_id: str, amount: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = httpx.post(
                    f"{self.url}{TX}",
                    content=record_text,
                    headers={
                        "X-API-Key": self.key,
                        "Content-Type": "application/json",
                        "Idempotency-Key": f"kill-{transaction_id}",
                    },
                    timeout=15,
                )
            except httpx.HTTPError as exc:
                self.errors[type(exc).__name__] += 1
            else:
                if response.status_code == 200:
                    self.acked[transaction_id] = amount
                    return
                assert response.status_code in (409, 503), response.text
                self.errors[str(response.status_code)] += 1
            time.sleep(0.5)

    def run(self, records: list[tuple[str, str, str]]) -> None:
        for text, transaction_id, amount in records:
            self.send(text, transaction_id, amount)
            time.sleep(1 / RATE_PER_S)


def _records(run: str) -> list[tuple[str, str, str]]:
    """`(JSON text, transaction id, amount text)`: amounts with 18 significant digits."""
    rng = random.Random(run)
    out = []
    for n in range(RECORDS):
        record = samples.transaction(rng, transaction_id=f"KILL-{run}-{n}", currency="USD")
        amount = f"{rng.randrange(10**11, 10**12)}.{rng.randrange(10**6):06d}"
        text = json.dumps({**record, "amount": "__amount__"}).replace('"__amount__"', amount)
        out.append((text, record["transaction_id"], amount))
    return out


def _start_landing(
    lake: Lake, start: str, tmp_path: Path, *, available_now: bool = False
) -> JobProcess:
    return JobProcess.start(
        "pyspark_jobs.landing",
        [
            *(["--available-now"] if available_now else []),
            "--lake-prefix",
            lake.prefix,
            "--entity",
            f"{TRANSACTIONS.domain}/{TRANSACTIONS.name}",
            "--starting-offsets",
            start,
            "--trigger-interval-s",
            "1",
            "--heartbeat-path",
            str(tmp_path / "hb.json"),
            # No /metrics endpoint: the platform's own landing job holds the port.
            "--metrics-port",
            "0",
        ],
        tmp_path / "landing.log",
    )


def _when(client: _Client, fraction: float) -> Callable[[], bool]:
    return lambda: len(client.acked) >= RECORDS * fraction


def test_sigkill_ingestor_broker_and_landing_every_acked_record_once_with_exact_amount(
    lake_spark: SparkSession,
    lake: Lake,
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    broker_restored: object,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    records = _records(run)
    start = json.dumps(end_offsets(kafka_settings, [TRANSACTIONS.topic]))
    with temporary_schema(postgres_settings) as schema:
        env = {"INGESTOR_SINK": "kafka", "INGEST_DB_SCHEMA": schema, "INGESTOR_SINK_TIMEOUT_S": "3"}
        key = create_api_key(postgres_settings, schema)
        landing = _start_landing(lake, start, tmp_path)
        first: LiveIngestor
        with live_ingestor(env) as first:
            client = _Client(first.url, key)
            load = threading.Thread(target=client.run, args=(records,), daemon=True)
            load.start()
            wait_for(_when(client, 0.2), 300, "a fifth of the load")
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(30)
        with live_ingestor(env) as second:
            client.url = second.url
            wait_for(_when(client, 0.4), 300, "two fifths of the load")
            pid = broker_pid()
            assert pid, "no broker PID from supervisorctl"
            os.kill(pid, signal.SIGKILL)
            wait_for(
                lambda: broker_pid() not in (0, pid) and broker_up(kafka_settings),
                180,
                "the broker to restart",
            )
            wait_for(_when(client, 0.6), 300, "three fifths of the load")
            landing.kill()
            landing = _start_landing(lake, start, tmp_path)
            load.join(900)
            assert not load.is_alive(), "the load did not finish"

    acked = client.acked
    assert len(acked) == RECORDS, f"unacknowledged after retries: {RECORDS - len(acked)}"

    def landed_all() -> bool:
        rows = delta_rs_rows(lake, "bronze/finance/transactions")
        return set(acked) <= {row["record_key"] for row in rows}

    wait_for(lambda: landing.process.poll() is not None or landed_all(), 600, "landing")
    if landing.process.poll() is None:
        landing.process.send_signal(signal.SIGTERM)
        assert landing.wait(120) == 0, landing.tail()
    else:  # it stopped on the broker's restart: supervisord would start it again
        again = _start_landing(lake, start, tmp_path, available_now=True)
        assert again.wait(600) == 0, again.tail()

    bronze = delta_rs_rows(lake, "bronze/finance/transactions")
    coordinates = Counter((row["kafka_partition"], row["kafka_offset"]) for row in bronze)
    assert max(coordinates.values()) == 1, "a Kafka record landed twice in bronze"
    assert curation.main(["--run-id", f"kill-{run}", "--lake-prefix", lake.prefix]) == 0
    silver = [
        row
        for row in delta_rs_rows(lake, "silver/finance/transactions")
        if row["transaction_id"].startswith(f"KILL-{run}-")
    ]
    assert Counter(row["transaction_id"] for row in silver).most_common(1)[0][1] == 1
    assert {row["transaction_id"]: row["amount"] for row in silver} == {
        key: Decimal(amount) for key, amount in acked.items()
    }
