"""Landing transforms on tiny inline DataFrames: contract check, bronze and quarantine rows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession

from dataplatform.contracts import TRANSACTIONS, FinancialTransactionIn
from dataplatform.contracts.bronze import BRONZE_COLUMNS
from dataplatform.ingest_ids import IngestIds
from pyspark_jobs import transforms
from tests.factories import transaction
from tests.unit.spark_fixtures import assertDataFrameEqual, spark

__all__ = ["spark"]

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "headers array<struct<key: string, value: binary>>"
)
ACCEPTED_AT = datetime(2024, 3, 1, 12, 31, tzinfo=UTC)
SECRET = b"a-test-receipt-secret"


def _check(record: Any, *, key: str | None = None, normalize: bool = True) -> tuple:
    value = record if isinstance(record, bytes) else json.dumps(record).encode()
    return transforms.check_record(
        FinancialTransactionIn,
        "transaction_id",
        key.encode() if key is not None else None,
        value,
        normalize=normalize,
    )


def test_check_record_valid_seed_shape_normalises() -> None:
    record = transaction(transaction_id="FT-1", currency="usd", amount=125.5)

    payload, key, normalized, error = _check(record, key="FT-1")

    assert error is None
    assert key == "FT-1"
    assert payload == json.dumps(record)
    parsed = json.loads(normalized)
    assert parsed["currency"] == "USD"
    assert parsed["timestamp"] == "2024-03-01T12:30:00Z"
    assert parsed["amount"] == "125.5"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"transaction_id": "FT-1"}, "account_id: Field required"),
        (transaction(amount="1.1234567"), "amount: Decimal input should have no more than 6"),
        (transaction(channel="web"), "channel: Extra inputs are not permitted"),
        (transaction(currency="XXY"), "currency: Value error, 'XXY' is not an active ISO 4217"),
        (b"{not json", "Invalid JSON"),
        (b"[1, 2]", "record: Input should be a valid dictionary"),
    ],
    ids=["missing", "too-precise", "extra-field", "currency", "not-json", "not-object"],
)
def test_check_record_invalid_names_field(record: Any, reason: str) -> None:
    _payload, key, normalized, error = _check(record)

    assert error is not None and reason in error
    assert key is None and normalized is None


def test_check_record_keeps_exact_decimal_digits() -> None:
    text = json.dumps(transaction(transaction_id="FT-1", amount="@"))
    value = text.replace('"@"', "123456789012.123456").encode()

    _payload, _key, normalized, error = _check(value)

    assert error is None
    assert json.loads(normalized)["amount"] == "123456789012.123456"


def test_check_record_repeated_key_refused() -> None:
    text = json.dumps(transaction(transaction_id="FT-1", amount=1))
    value = text.replace('"amount": 1', '"amount": 1, "amount": 1000000').encode()

    _payload, key, normalized, error = _check(value)

    assert key is None and normalized is None
    assert error == "record: the key 'amount' appears more than once in one object"


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_check_record_timestamp_outside_utc_years_refused(moment: str) -> None:
    _payload, _key, _normalized, error = _check(transaction(timestamp=moment))

    assert error is not None and error.startswith("timestamp:")


def test_check_record_not_utf8_keeps_bytes_as_base64() -> None:
    payload, _key, _normalized, error = _check(b"\xff\xfe{}")

    assert payload == "base64://57fQ=="
    assert error is not None and error.startswith("payload is not UTF-8")


def test_check_record_key_mismatch_refused() -> None:
    _payload, key, _normalized, error = _check(transaction(transaction_id="FT-2"), key="FT-3")

    assert key == "FT-2"
    assert error == "Kafka key 'FT-3' does not match transaction_id 'FT-2'"


def test_check_record_jpy_cents_accepted_at_the_edge() -> None:
    assert _check(transaction(currency="JPY", amount="100.50"))[3] is None


def _kafka_rows(
    spark: SparkSession,
    messages: list[tuple[str | None, bytes, bool]],
    extra_headers: list[tuple[str, bytes]] | None = None,
) -> DataFrame:
    rows = [
        (
            key.encode() if key else None,
            value,
            "finance.transactions.v1",
            1,
            offset,
            ACCEPTED_AT,
            ([("ingest_id", f"ing-{offset}".encode())] if with_header else [])
            + (extra_headers or []),
        )
        for offset, (key, value, with_header) in enumerate(messages)
    ]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def test_kafka_to_bronze_valid_rows_with_ingest_metadata(spark: SparkSession) -> None:
    good = transaction(transaction_id="FT-1")
    no_header = transaction(transaction_id="FT-2")
    batch = _kafka_rows(
        spark,
        [
            ("FT-1", json.dumps(good).encode(), True),
            ("FT-2", json.dumps(no_header).encode(), False),
            ("FT-3", b"{}", True),
        ],
    )

    bronze = batch.transform(
        transforms.kafka_to_checked, TRANSACTIONS, epoch=3, receipt_secret=SECRET
    ).transform(transforms.to_bronze)

    assert bronze.columns == [name for name, *_ in BRONZE_COLUMNS]
    assertDataFrameEqual(
        bronze.drop("landed_at"),
        [
            Row(
                ingest_id="ing-0",
                record_key="FT-1",
                payload=json.dumps(good),
                source="kafka",
                kafka_topic="finance.transactions.v1",
                kafka_partition=1,
                kafka_offset=0,
                outbox_id=None,
                ingested_at=ACCEPTED_AT.replace(tzinfo=None),
                ingest_date=date(2024, 3, 1),
                source_epoch=3,
                source_offset=0,
                trace_id=None,
            ),
            Row(
                ingest_id="kafka:finance.transactions.v1:1:1",
                record_key="FT-2",
                payload=json.dumps(no_header),
                source="kafka",
                kafka_topic="finance.transactions.v1",
                kafka_partition=1,
                kafka_offset=1,
                outbox_id=None,
                ingested_at=ACCEPTED_AT.replace(tzinfo=None),
                ingest_date=date(2024, 3, 1),
                source_epoch=3,
                source_offset=1,
                trace_id=None,
            ),
        ],
    )


def test_kafka_to_bronze_trace_id_from_traceparent_header(spark: SparkSession) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "FT-1": f"00-{trace}-00f067aa0ba902b7-01",
        "FT-2": "not a traceparent",
        "FT-3": f"00-{'0' * 32}-00f067aa0ba902b7-01",  # the invalid all-zero trace id
        "FT-4": f"00-{trace.upper()}-00f067aa0ba902b7-01",  # W3C: lower-case hex only
    }
    batches = [
        _kafka_rows(
            spark,
            [(key, json.dumps(transaction(transaction_id=key)).encode(), True)],
            extra_headers=[("traceparent", value.encode())],
        )
        for key, value in headers.items()
    ]
    batches.append(
        _kafka_rows(
            spark, [("FT-5", json.dumps(transaction(transaction_id="FT-5")).encode(), True)]
        )
    )
    batch = batches[0]
    for other in batches[1:]:
        batch = batch.unionByName(other)

    bronze = batch.transform(
        transforms.kafka_to_checked, TRANSACTIONS, epoch=1, receipt_secret=SECRET
    ).transform(transforms.to_bronze)

    found = {row["record_key"]: row["trace_id"] for row in bronze.collect()}
    assert found == {"FT-1": trace, "FT-2": None, "FT-3": None, "FT-4": None, "FT-5": None}


def test_kafka_to_quarantine_keeps_payload_and_reason(spark: SparkSession) -> None:
    record = transaction(transaction_id="FT-1")
    batch = _kafka_rows(spark, [("FT-1", json.dumps(record).encode(), True), (None, b"{}", True)])

    quarantined = transforms.to_quarantine(
        batch.transform(transforms.kafka_to_checked, TRANSACTIONS, epoch=2, receipt_secret=SECRET),
        stage="landing",
    )

    assert quarantined.schema.fieldNames() == transforms.QUARANTINE_SCHEMA.fieldNames()
    rows = quarantined.collect()
    assert len(rows) == 1
    row = rows[0]
    assert row.quarantine_id == "landing:finance.transactions.v1:1:1"
    assert (row.stage, row.payload, row.ingest_id, row.kafka_offset) == (
        "landing",
        "{}",
        "ing-1",
        1,
    )
    assert row.reason.startswith("transaction_id: Field required")
    assert row.run_id is None
    assert (row.source_epoch, row.source_offset) == (2, 1)


def test_kafka_to_checked_replayed_record_keeps_its_order_token(spark: SparkSession) -> None:
    record = transaction(transaction_id="FT-1")
    replayed = [("source_epoch", b"1"), ("source_offset", b"41")]
    batch = _kafka_rows(spark, [("FT-1", json.dumps(record).encode(), True)], replayed)
    fresh = _kafka_rows(spark, [("FT-1", json.dumps(record).encode(), True)])

    tokens = [
        (row.kafka_offset, row.source_epoch, row.source_offset)
        for df in (batch, fresh)
        for row in df.transform(
            transforms.kafka_to_checked, TRANSACTIONS, epoch=2, receipt_secret=SECRET
        ).collect()
    ]

    assert tokens == [(0, 1, 41), (0, 2, 0)]


@pytest.mark.parametrize("secret", [SECRET, b"k" * 64, b"a much longer secret " * 5])
def test_kafka_to_checked_signed_id_is_the_id_the_ingestor_gave(
    spark: SparkSession, secret: bytes
) -> None:
    record = transaction(transaction_id="FT-1")
    headers = [("topic_id", b"3/kU8+eQR/20jN9nXpjZJg"), ("api_key_id", b"k3y.id")]
    rows = [
        (b"FT-1", json.dumps(record).encode(), "finance.transactions.v1", 2, offset, at, headers)
        for offset, at in [
            (0, ACCEPTED_AT),
            (1234567, datetime(2026, 12, 1, 1, 2, 3, 456000, tzinfo=UTC)),
        ]
    ]
    batch = spark.createDataFrame(rows, KAFKA_SCHEMA)
    ids = IngestIds(secret)

    got = [
        row.ingest_id
        for row in batch.transform(
            transforms.kafka_to_checked, TRANSACTIONS, epoch=1, receipt_secret=secret
        ).collect()
    ]

    expected = [
        ids.kafka("3/kU8+eQR/20jN9nXpjZJg", 2, offset, int(at.timestamp() * 1000), "k3y.id")
        for _, _, _, _, offset, at, _ in rows
    ]
    assert got == expected
    assert [ids.place(i, "k3y.id") is not None for i in got] == [True, True]
