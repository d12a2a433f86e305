"""Curation transforms on tiny inline DataFrames: parsing, dedup, FX, expectations, gold, and
the curation job's whole transform step (`curate_batch`)."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.products import DATA_PRODUCTS, DataProduct
from pyspark_jobs import curation, quality, transforms
from pyspark_jobs.quality import Expectation, evaluate, load_expectations
from pyspark_jobs.schemas import bronze_schema, gold_schema
from tests.factories import claim, transaction
from tests.unit.spark_fixtures import assertDataFrameEqual, spark

__all__ = ["spark"]

T0 = datetime(2024, 3, 1, 12, 0)


def _bronze(
    spark: SparkSession,
    records: list[tuple[dict[str, Any] | str, datetime, str]],
    *,
    epoch: int | None = 1,
) -> DataFrame:
    """Bronze rows (record or its raw JSON text, ingested_at, ingest_id), in offset order,
    with order token `(epoch, offset)` and `_commit_version` 7."""
    rows = []
    for offset, (record, ingested_at, ingest_id) in enumerate(records):
        payload = record if isinstance(record, str) else json.dumps(record)
        fields = json.loads(payload)
        rows.append(
            (
                ingest_id,
                fields.get("transaction_id") or fields.get("claim_id"),
                payload,
                "kafka",
                "t",
                0,
                offset,
                None,
                ingested_at,
                ingested_at,
                ingested_at.date(),
                epoch,
                offset if epoch is not None else None,
                None,
            )
        )
    return spark.createDataFrame(rows, bronze_schema()).withColumn(
        "_commit_version", F.lit(7).cast("long")
    )


def _typed(
    spark: SparkSession,
    records: list[tuple[dict[str, Any] | str, datetime, str]],
    entity: Any = TRANSACTIONS,
) -> DataFrame:
    return (
        _bronze(spark, records)
        .transform(transforms.bronze_to_checked, entity)
        .transform(transforms.parse_checked, entity, run_id="r1")
    )


def test_parse_checked_types_and_normalises(spark: SparkSession) -> None:
    record = transaction(
        transaction_id="FT-1", timestamp="2024-03-01T23:30:00-02:00", currency="usd", amount="0.1"
    )

    typed = _typed(spark, [(record, T0, "i1")])

    assertDataFrameEqual(
        typed.select(
            "transaction_id",
            "timestamp",
            "event_date",
            "amount",
            "currency",
            "bronze_version",
            "curation_run_id",
        ),
        [
            Row(
                transaction_id="FT-1",
                timestamp=datetime(2024, 3, 2, 1, 30),
                event_date=date(2024, 3, 2),
                amount=Decimal("0.100000"),
                currency="USD",
                bronze_version=7,
                curation_run_id="r1",
            )
        ],
    )


def test_parse_checked_refused_payload_goes_to_quarantine(spark: SparkSession) -> None:
    checked = _bronze(spark, [({"transaction_id": "FT-9", "amount": "x"}, T0, "i9")]).transform(
        transforms.bronze_to_checked, TRANSACTIONS
    )

    assert checked.transform(transforms.parse_checked, TRANSACTIONS, run_id="r").count() == 0
    refused = transforms.to_quarantine(checked, stage="curation", run_id="r").collect()
    assert [(r.quarantine_id, r.stage, r.run_id) for r in refused] == [
        ("curation:t:0:0", "curation", "r")
    ]
    assert (
        "amount: Decimal input should be an integer, float, string or Decimal"
        not in refused[0].reason
    )
    assert "account_id: Field required" in refused[0].reason


def test_parse_checked_keeps_exact_decimal_digits(spark: SparkSession) -> None:
    big = transaction(transaction_id="FT-BIG", amount="@BIG@")
    tiny = transaction(transaction_id="FT-TINY", amount="@TINY@")
    # The raw JSON numbers, as a client sends them (json.dumps of a float would round them).
    raw = [
        json.dumps(big).replace('"@BIG@"', "123456789012.123456"),
        json.dumps(tiny).replace('"@TINY@"', "0.000001"),
    ]

    typed = _typed(spark, [(raw[0], T0, "i1"), (raw[1], T0, "i2")])

    assert sorted((r.transaction_id, r.amount) for r in typed.collect()) == [
        ("FT-BIG", Decimal("123456789012.123456")),
        ("FT-TINY", Decimal("0.000001")),
    ]


def test_latest_per_key_event_time_then_order_token(spark: SparkSession) -> None:
    a_old = transaction(transaction_id="A", timestamp="2024-03-01T10:00:00", amount=1)
    a_new = transaction(transaction_id="A", timestamp="2024-03-01T11:00:00", amount=2)
    b_first = transaction(transaction_id="B", amount=3)
    b_later = transaction(transaction_id="B", amount=4)
    typed = _typed(
        spark,
        [
            (a_new, T0, "i1"),
            (a_old, datetime(2024, 3, 1, 13), "i2"),
            # Same event time: the later offset wins, whatever ingested_at and the ids say.
            (b_first, datetime(2024, 3, 1, 13), "i9"),
            (b_later, T0, "i0"),
        ],
    )

    latest = typed.transform(transforms.latest_per_key, TRANSACTIONS)

    assertDataFrameEqual(
        latest.select("transaction_id", "amount"),
        [
            Row(transaction_id="A", amount=Decimal("2.000000")),
            Row(transaction_id="B", amount=Decimal("4.000000")),
        ],
    )


def test_latest_per_key_equal_event_time_later_offset_wins_every_key(
    spark: SparkSession,
) -> None:
    # Finding 2: 40 claims, each sent as [submitted, approved] with one timestamp, in one
    # batch (same ingested_at); the ingest ids are arbitrary UUIDs.
    records = []
    for number in range(40):
        for status in ("submitted", "approved"):
            record = claim(claim_id=f"C-{number}", claim_status=status)
            records.append((record, T0, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{number}{status}"))))

    latest = _typed(spark, records, CLAIMS).transform(transforms.latest_per_key, CLAIMS)

    statuses = {row.claim_id: row.claim_status for row in latest.collect()}
    assert statuses == {f"C-{number}": "approved" for number in range(40)}


def test_latest_per_key_a_b_a_equal_event_time_ends_at_a(spark: SparkSession) -> None:
    versions = [
        claim(claim_id="C-1", claim_status=status)
        for status in ("approved", "rejected", "approved")
    ]
    records = [(record, T0, f"i{9 - offset}") for offset, record in enumerate(versions)]

    latest = _typed(spark, records, CLAIMS).transform(transforms.latest_per_key, CLAIMS)

    assert [(r.claim_status, r.source_offset) for r in latest.collect()] == [("approved", 2)]


def test_latest_per_key_null_token_sorts_oldest(spark: SparkSession) -> None:
    legacy = _bronze(spark, [(transaction(transaction_id="L", amount=9), T0, "z")], epoch=None)
    current = _bronze(spark, [(transaction(transaction_id="L", amount=1), T0, "a")], epoch=0)
    typed = (
        legacy.unionByName(current)
        .transform(transforms.bronze_to_checked, TRANSACTIONS)
        .transform(transforms.parse_checked, TRANSACTIONS, run_id="r")
    )

    latest = typed.transform(transforms.latest_per_key, TRANSACTIONS).collect()

    assert [(r.amount, r.source_epoch) for r in latest] == [(Decimal("1.000000"), 0)]


def test_latest_valid_per_key_newer_dropped_version_keeps_older_valid(
    spark: SparkSession,
) -> None:
    # Finding 3: one batch, the same id dated 2024 and 2205; the 2205 one fails the `drop`
    # expectation event_time_not_in_future.
    valid = transaction(transaction_id="FT-1", timestamp="2024-03-01T12:30:00", currency="EUR")
    future = transaction(transaction_id="FT-1", timestamp="2205-03-01T12:30:00", currency="EUR")
    expectations = load_expectations(TRANSACTIONS)
    drop_names = [item.name for item in expectations if item.action == "drop"]
    flagged = (
        _typed(spark, [(valid, T0, "i1"), (future, T0, "i2")])
        .withColumn("currency_minor_units", F.lit(2))
        .withColumn("amount_reporting", F.col("amount"))
        .transform(quality.flag_expectations, expectations)
    )

    latest = transforms.latest_valid_per_key(flagged, TRANSACTIONS, drop_names).collect()
    dropped = flagged.where(transforms.failing(flagged, drop_names)).collect()

    assert [r.timestamp for r in latest] == [datetime(2024, 3, 1, 12, 30)]
    assert [r.timestamp.year for r in dropped] == [2205]


def test_newer_than_orders_like_latest_per_key(spark: SparkSession) -> None:
    later = datetime(2024, 3, 2)
    pairs = spark.createDataFrame(
        [
            (T0, 1, 5, T0, 1, 4, True),
            (T0, 1, 4, T0, 1, 4, False),
            (T0, 1, 3, T0, 1, 4, False),
            (T0, 2, 0, T0, 1, 9, True),
            (T0, 0, 9, T0, None, None, True),
            (T0, None, None, T0, 0, 0, False),
            (T0, None, None, T0, None, None, False),
            (later, 0, 0, T0, 9, 9, True),
            (T0, 9, 9, later, 0, 0, False),
        ],
        "s_ts timestamp, s_e long, s_o long, t_ts timestamp, t_e long, t_o long, expected boolean",
    )
    condition = transforms.newer_than(TRANSACTIONS)
    s = pairs.select(
        F.struct(
            F.col("s_ts").alias("timestamp"),
            F.col("s_e").alias("source_epoch"),
            F.col("s_o").alias("source_offset"),
        ).alias("s"),
        F.struct(
            F.col("t_ts").alias("timestamp"),
            F.col("t_e").alias("source_epoch"),
            F.col("t_o").alias("source_offset"),
        ).alias("t"),
        "expected",
    )

    assert s.where(F.expr(condition) != F.col("expected")).count() == 0


@pytest.fixture
def reference(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    currencies = spark.createDataFrame(
        [("EUR", 2), ("USD", 2), ("JPY", 0), ("CHF", 2)], "code string, minor_units int"
    )
    fx = spark.createDataFrame(
        [
            ("USD", "EUR", Decimal("0.9"), date(2000, 1, 1)),
            ("USD", "EUR", Decimal("0.8"), date(2024, 3, 2)),
            ("JPY", "EUR", Decimal("0.00642"), date(2000, 1, 1)),
            ("USD", "GBP", Decimal("0.7"), date(2000, 1, 1)),
        ],
        "base_currency string, quote_currency string, rate decimal(20,10), valid_from date",
    )
    return currencies, fx


def test_with_fx_picks_rate_valid_on_event_date_and_rounds(
    spark: SparkSession, reference: tuple[DataFrame, DataFrame]
) -> None:
    currencies, fx = reference
    rows = spark.createDataFrame(
        [
            ("1", "USD", Decimal("10.555"), date(2024, 3, 1)),
            ("2", "USD", Decimal("10"), date(2024, 3, 2)),
            ("3", "JPY", Decimal("1000"), date(2024, 3, 1)),
            ("4", "EUR", Decimal("5.5"), date(2024, 3, 1)),
            ("5", "CHF", Decimal("1"), date(2024, 3, 1)),
        ],
        "transaction_id string, currency string, amount decimal(18,6), event_date date",
    )

    enriched = rows.transform(
        transforms.with_fx, currencies, fx, reporting_currency="EUR", reporting_minor_units=2
    )

    assertDataFrameEqual(
        enriched.select(
            "transaction_id",
            "currency_minor_units",
            "reporting_currency",
            "fx_rate",
            "amount_reporting",
        ),
        [
            Row(
                transaction_id="1",
                currency_minor_units=2,
                reporting_currency="EUR",
                fx_rate=Decimal("0.9000000000"),
                amount_reporting=Decimal("9.500000"),
            ),
            Row(
                transaction_id="2",
                currency_minor_units=2,
                reporting_currency="EUR",
                fx_rate=Decimal("0.8000000000"),
                amount_reporting=Decimal("8.000000"),
            ),
            Row(
                transaction_id="3",
                currency_minor_units=0,
                reporting_currency="EUR",
                fx_rate=Decimal("0.0064200000"),
                amount_reporting=Decimal("6.420000"),
            ),
            Row(
                transaction_id="4",
                currency_minor_units=2,
                reporting_currency="EUR",
                fx_rate=Decimal("1.0000000000"),
                amount_reporting=Decimal("5.500000"),
            ),
            Row(
                transaction_id="5",
                currency_minor_units=2,
                reporting_currency="EUR",
                fx_rate=None,
                amount_reporting=None,
            ),
        ],
    )


EXPECTATIONS = [
    Expectation(name="small", description="d", condition="amount < 100", action="warn"),
    Expectation(
        name="known", description="d", condition="currency_minor_units IS NOT NULL", action="fail"
    ),
    Expectation(
        name="precise",
        description="d",
        condition="pmod(amount * CAST(power(10, currency_minor_units) AS DECIMAL(20, 0)), 1) = 0",
        action="drop",
    ),
]


def test_flag_expectations_names_failures_null_counts_as_failed(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [("1", Decimal("5"), 2), ("2", Decimal("500.5"), 0), ("3", Decimal("1.25"), None)],
        "id string, amount decimal(18,6), currency_minor_units int",
    )

    flagged = rows.transform(quality.flag_expectations, EXPECTATIONS)

    assertDataFrameEqual(
        flagged.select("id", quality.FAILED_COLUMN),
        [
            Row(id="1", _failed_expectations=[]),
            Row(id="2", _failed_expectations=["small", "precise"]),
            Row(id="3", _failed_expectations=["known", "precise"]),
        ],
    )
    assert [r.id for r in flagged.where(transforms.failing(flagged, ["precise"])).collect()] == [
        "2",
        "3",
    ]
    results = {
        r.expectation.name: (r.rows_evaluated, r.rows_failed, r.outcome)
        for r in evaluate(flagged, EXPECTATIONS)
    }
    assert results == {"small": (3, 1, "warn"), "known": (3, 1, "fail"), "precise": (3, 2, "drop")}


def test_daily_account_totals_per_day_account_currency(spark: SparkSession) -> None:
    silver = spark.createDataFrame(
        [
            (date(2024, 3, 1), "A", "USD", Decimal("1.5"), "EUR", Decimal("1.35")),
            (date(2024, 3, 1), "A", "USD", Decimal("2"), "EUR", Decimal("1.8")),
            (date(2024, 3, 1), "A", "EUR", Decimal("3"), "EUR", Decimal("3")),
            (date(2024, 3, 2), "A", "USD", Decimal("4"), "EUR", None),
        ],
        "event_date date, account_id string, currency string, amount decimal(18,6), "
        "reporting_currency string, amount_reporting decimal(24,6)",
    )

    assertDataFrameEqual(
        silver.transform(transforms.daily_account_totals),
        [
            Row(
                event_date=date(2024, 3, 1),
                account_id="A",
                currency="USD",
                transaction_count=2,
                total_amount=Decimal("3.5"),
                reporting_currency="EUR",
                total_amount_reporting=Decimal("3.15"),
            ),
            Row(
                event_date=date(2024, 3, 1),
                account_id="A",
                currency="EUR",
                transaction_count=1,
                total_amount=Decimal("3"),
                reporting_currency="EUR",
                total_amount_reporting=Decimal("3"),
            ),
            Row(
                event_date=date(2024, 3, 2),
                account_id="A",
                currency="USD",
                transaction_count=1,
                total_amount=Decimal("4"),
                reporting_currency="EUR",
                total_amount_reporting=None,
            ),
        ],
    )


def test_claims_daily_per_type_status_day(spark: SparkSession) -> None:
    records = [
        (
            claim(claim_id="C1", claim_type="auto", claim_status="paid", claim_amount="10.5"),
            T0,
            "i1",
        ),
        (claim(claim_id="C2", claim_type="auto", claim_status="paid", claim_amount="1"), T0, "i2"),
        (
            claim(claim_id="C3", claim_type="home", claim_status="submitted", claim_amount="7"),
            T0,
            "i3",
        ),
    ]

    gold = _typed(spark, records, CLAIMS).transform(transforms.claims_daily)

    assertDataFrameEqual(
        gold,
        [
            Row(
                event_date=date(2024, 3, 1),
                claim_type="auto",
                claim_status="paid",
                claim_count=2,
                total_claim_amount=Decimal("11.5"),
            ),
            Row(
                event_date=date(2024, 3, 1),
                claim_type="home",
                claim_status="submitted",
                claim_count=1,
                total_claim_amount=Decimal("7"),
            ),
        ],
    )


def test_silver_schema_contract_fields_then_lineage_then_fx() -> None:
    names = transforms.silver_schema(TRANSACTIONS).fieldNames()

    assert names[:8] == [
        "transaction_id",
        "timestamp",
        "account_id",
        "amount",
        "currency",
        "transaction_type",
        "merchant_id",
        "category",
    ]
    assert names[-4:] == [
        "currency_minor_units",
        "reporting_currency",
        "fx_rate",
        "amount_reporting",
    ]
    assert "amount_reporting" not in transforms.silver_schema(CLAIMS).fieldNames()
    assert not transforms.silver_schema(TRANSACTIONS)["transaction_id"].nullable


@pytest.mark.parametrize("product", DATA_PRODUCTS, ids=lambda p: p.gold)
def test_gold_transform_columns_match_declared_gold_schema(
    spark: SparkSession, product: DataProduct
) -> None:
    silver = spark.createDataFrame([], transforms.silver_schema(product.entity))

    gold = silver.transform(transforms.GOLD_TRANSFORMS[product.gold])

    assert [(f.name, f.dataType) for f in gold.schema.fields] == [
        (f.name, f.dataType) for f in gold_schema(product).fields
    ]


def _curate(
    spark: SparkSession,
    records: list[tuple[dict[str, Any] | str, datetime, str]],
    reference: tuple[DataFrame, DataFrame],
    entity: Any = TRANSACTIONS,
    *,
    reporting_currency: str = "EUR",
) -> curation.CuratedBatch:
    return curation.curate_batch(
        _bronze(spark, records),
        entity,
        run_id="r1",
        reference=curation.Reference(*reference),
        expectations=load_expectations(entity),
        reporting_currency=reporting_currency,
    )


def test_curate_batch_splits_silver_and_quarantine(
    spark: SparkSession, reference: tuple[DataFrame, DataFrame]
) -> None:
    valid = transaction(transaction_id="FT-1", timestamp="2024-03-01T12:30:00", amount="10")
    future = transaction(transaction_id="FT-1", timestamp="2205-03-01T12:30:00", amount="20")
    euros = transaction(transaction_id="FT-2", currency="EUR", amount="5.5")
    broken = {"transaction_id": "FT-9", "amount": "x"}

    batch = _curate(
        spark,
        [(valid, T0, "i1"), (future, T0, "i2"), (broken, T0, "i3"), (euros, T0, "i4")],
        reference,
    )
    try:
        rows_read = batch.checked.count()
        latest = batch.latest.orderBy("transaction_id").collect()
        quarantined = batch.quarantine.orderBy("quarantine_id").collect()
    finally:
        batch.unpersist()

    assert rows_read == 4
    # The 2205 version is dropped by `event_time_not_in_future`; the older valid one wins.
    assert [(r.transaction_id, r.timestamp, r.fx_rate, r.amount_reporting) for r in latest] == [
        ("FT-1", datetime(2024, 3, 1, 12, 30), Decimal("0.9"), Decimal("9")),
        ("FT-2", datetime(2024, 3, 1, 12, 30), Decimal("1"), Decimal("5.5")),
    ]
    assert set(transforms.silver_schema(TRANSACTIONS).fieldNames()) <= set(batch.latest.columns)
    assert [(r.quarantine_id, r.stage, r.record_key, r.run_id) for r in quarantined] == [
        ("curation:t:0:2", "curation", None, "r1"),
        ("expectation:t:0:1", "expectation", "FT-1", "r1"),
    ]
    assert "account_id: Field required" in quarantined[0].reason
    assert quarantined[1].reason == "failed expectation(s): event_time_not_in_future"


def test_curate_batch_claims_without_fx(
    spark: SparkSession, reference: tuple[DataFrame, DataFrame]
) -> None:
    record = claim(claim_id="IC-1", claim_amount="2500.50")

    batch = _curate(spark, [(record, T0, "i1")], reference, CLAIMS, reporting_currency="XXX")
    try:
        latest = batch.latest.collect()
        quarantined = batch.quarantine.count()
    finally:
        batch.unpersist()

    assert [(r.claim_id, r.claim_amount, r.curation_run_id) for r in latest] == [
        ("IC-1", Decimal("2500.500000"), "r1")
    ]
    assert "amount_reporting" not in batch.latest.columns
    assert quarantined == 0


def test_curate_batch_unknown_reporting_currency_is_refused(
    spark: SparkSession, reference: tuple[DataFrame, DataFrame]
) -> None:
    record = transaction(transaction_id="FT-1")

    with pytest.raises(ValueError, match="reporting currency XXX is not in reference"):
        _curate(spark, [(record, T0, "i1")], reference, reporting_currency="XXX")
