"""The whole intermediate path: HTTP API -> Kafka -> landing (Spark) -> bronze -> curation ->
silver and gold, on the real native services.

Records are POSTed through the ingestor, including resends, retries with an
Idempotency-Key, new versions of a record and invalid records (422 at the edge, so they never
enter). A contract-violating message produced straight to Kafka must reach quarantine with
its reason. The test's tables live under their own lake prefix; it reads the real topics from
the offsets they had when it started, and keys its assertions on its own unique accounts.

The jobs' OpenLineage events of the run, read back from the lake's events table (library and
`dataplatform lineage`) and from the Kafka topic, must trace gold to its topic.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyspark.sql import SparkSession

from dataplatform import samples
from dataplatform.clients.kafka import ensure_topics
from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.lake import Lake
from dataplatform.reference import seed_rates
from dataplatform.settings import LINEAGE_TOPIC, KafkaSettings, PostgresSettings
from fastapi_app.testing import create_api_key, live_ingestor, temporary_schema
from pyspark_jobs import curation
from tests.integration.lakehouse_support import (
    JobProcess,
    assert_engines_agree,
    day,
    end_offsets,
    lake,
    lake_spark,
    money,
    produce,
)
from tests.integration.lineage_support import assert_gold_lineage

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

TX = "/ingest-financial-transaction/"
CLAIM = "/ingest-insurance-claim/"


@pytest.fixture(scope="module")
def api(
    postgres_settings: PostgresSettings, kafka_settings: KafkaSettings
) -> Iterator[httpx.Client]:
    """The real ingestor on the Kafka sink, with an API key of its own schema."""
    with temporary_schema(postgres_settings) as schema:
        env = {"INGESTOR_SINK": "kafka", "INGEST_DB_SCHEMA": schema}
        with live_ingestor(env) as live:
            key = create_api_key(postgres_settings, schema)
            with httpx.Client(base_url=live.url, headers={"X-API-Key": key}, timeout=30) as client:
                yield client


def _post(api: httpx.Client, path: str, record: dict[str, Any], **headers: str) -> httpx.Response:
    return api.post(path, json=record, headers=headers)


def test_api_to_gold_exactly_one_silver_row_per_key_and_gold_sums(
    api: httpx.Client,
    lake_spark: SparkSession,
    lake: Lake,
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    rng = random.Random(20260101)
    run = uuid.uuid4().hex[:8]
    start = end_offsets(kafka_settings, [TRANSACTIONS.topic, CLAIMS.topic])
    ensure_topics(kafka_settings, [LINEAGE_TOPIC])
    lineage_start = end_offsets(kafka_settings, [LINEAGE_TOPIC])[LINEAGE_TOPIC]
    accounts = [f"ACC-E2E-{run}-{n}" for n in range(3)]
    # A day of its own keeps other tests' claims out of this test's gold rows.
    claim_day = date(1990, 1, 1).fromordinal(date(1990, 1, 1).toordinal() + rng.randrange(7000))

    transactions = [
        samples.transaction(
            rng, account_id=accounts[n % 3], timestamp=f"2024-05-0{1 + n % 3}T10:00:00Z"
        )
        for n in range(12)
    ]
    for record in transactions:
        assert _post(api, TX, record).status_code == 200
    # A resend without a header is a further version with the same payload (one silver row);
    # retries with an Idempotency-Key are one message.
    assert _post(api, TX, transactions[0]).json()["duplicate"] is False
    retry_key = f"e2e-{run}"
    retried = samples.transaction(rng, account_id=accounts[0], timestamp="2024-05-01T11:00:00Z")
    receipts = {
        _post(api, TX, retried, **{"Idempotency-Key": retry_key}).json()["ingest_id"]
        for _ in range(4)
    }
    assert len(receipts) == 1
    transactions.append(retried)
    # A new version of a record: the later event wins in silver.
    corrected = {**transactions[1], "amount": "42.42", "timestamp": "2024-05-02T23:59:00Z"}
    assert _post(api, TX, corrected).json()["duplicate"] is False
    transactions[1] = corrected
    # Invalid at the edge: 422, never enters Kafka.
    rejected = [
        samples.transaction(rng, account_id=accounts[0], amount="-1"),
        {**samples.transaction(rng, account_id=accounts[0]), "currency": "XXX"},
    ]
    for record in rejected:
        assert _post(api, TX, record).status_code == 422

    claims = [
        samples.claim(
            rng,
            timestamp=f"{claim_day.isoformat()}T09:00:00Z",
            incident_date=f"{claim_day.isoformat()}T08:00:00Z",
        )
        for _ in range(6)
    ]
    for record in claims:
        assert _post(api, CLAIM, record).status_code == 200
    approved = {
        **claims[0],
        "claim_status": "approved",
        "timestamp": f"{claim_day.isoformat()}T10:00:00Z",
    }
    assert _post(api, CLAIM, approved).status_code == 200
    claims[0] = approved

    # Valid JSON that breaks the contract, produced straight to Kafka (bypassing the edge).
    smuggled = {**samples.transaction(rng, account_id=accounts[1]), "amount": "12.3456789"}
    [smuggled_ingest_id] = produce(
        kafka_settings, TRANSACTIONS.topic, [smuggled], key_field="transaction_id"
    )

    landing = JobProcess.start(
        "pyspark_jobs.landing",
        [
            "--available-now",
            "--lake-prefix",
            lake.prefix,
            "--starting-offsets",
            json.dumps(start),
            "--heartbeat-path",
            str(tmp_path / "hb.json"),
            # No /metrics endpoint: the platform's own landing job holds the port.
            "--metrics-port",
            "0",
        ],
        tmp_path / "landing.log",
    )
    assert landing.wait(600) == 0, landing.tail()
    # As the curation DAG's task passes its own run (the provider's lineage_parent_id).
    parent = f"dataplatform/curation.curate/{uuid.uuid4()}"
    assert (
        curation.main(
            ["--run-id", f"e2e-{run}", "--lake-prefix", lake.prefix, "--lineage-parent", parent]
        )
        == 0
    )
    assert_gold_lineage(
        lake,
        kafka_settings,
        TRANSACTIONS.topic,
        lineage_start,
        parent=parent,
        min_rows={"bronze": 15, "silver": 13, "gold": 3},
    )

    # Silver: exactly one row per key, the latest version, read alike by Spark and delta-rs.
    silver = assert_engines_agree(
        lake_spark, lake, "silver/finance/transactions", ["transaction_id"]
    )
    mine = [row for row in silver if row["account_id"] in accounts]
    assert sorted(row["transaction_id"] for row in mine) == sorted(
        r["transaction_id"] for r in transactions
    )
    by_key = {row["transaction_id"]: row for row in mine}
    assert by_key[corrected["transaction_id"]]["amount"] == Decimal("42.42")
    assert not {r["transaction_id"] for r in rejected} & {row["transaction_id"] for row in silver}

    claims_silver = assert_engines_agree(lake_spark, lake, "silver/insurance/claims", ["claim_id"])
    claim_rows = {row["claim_id"]: row for row in claims_silver if row["event_date"] == claim_day}
    assert sorted(claim_rows) == sorted(r["claim_id"] for r in claims)
    assert claim_rows[approved["claim_id"]]["claim_status"] == "approved"

    # Quarantine: the smuggled record, with the reason.
    quarantined = assert_engines_agree(
        lake_spark, lake, "quarantine/landing/finance/transactions", ["quarantine_id"]
    )
    [bad] = [row for row in quarantined if row["ingest_id"] == smuggled_ingest_id]
    assert bad["stage"] == "landing"
    assert "amount: Decimal input should have no more than 6 decimal places" in bad["reason"]
    assert json.loads(bad["payload"]) == smuggled

    # Gold equals sums computed here from what was posted.
    to_eur = {base: rate for base, quote, rate in seed_rates() if quote == "EUR"} | {
        "EUR": Decimal(1)
    }
    expected: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for record in transactions:
        amount, currency = money(record["amount"]), record["currency"].upper()
        totals = expected[(day(record["timestamp"]), record["account_id"], currency)]
        totals[0] += 1
        totals[1] += amount
        totals[2] += (amount * to_eur[currency]).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    gold = assert_engines_agree(
        lake_spark,
        lake,
        "gold/finance/daily_account_totals",
        ["event_date", "account_id", "currency"],
    )
    assert {
        (r["event_date"], r["account_id"], r["currency"]): [
            r["transaction_count"],
            r["total_amount"],
            r["total_amount_reporting"],
        ]
        for r in gold
        if r["account_id"] in accounts
    } == dict(expected)

    claims_expected: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for record in claims:
        totals = claims_expected[(record["claim_type"], record["claim_status"])]
        totals[0] += 1
        totals[1] += money(record["claim_amount"])
    claims_gold = assert_engines_agree(
        lake_spark,
        lake,
        "gold/insurance/claims_daily",
        ["event_date", "claim_type", "claim_status"],
    )
    assert {
        (r["claim_type"], r["claim_status"]): [r["claim_count"], r["total_claim_amount"]]
        for r in claims_gold
        if r["event_date"] == claim_day
    } == dict(claims_expected)
