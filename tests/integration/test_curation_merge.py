"""Curation on the real S3, Postgres (reference data over JDBC) and Spark: MERGE latest-wins,
incremental and idempotent runs, expectations' actions, gold sums checked independently, and
every table read back with delta-rs as well."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.lake import CURATION_STATE_TABLE as STATE
from dataplatform.lake import EXPECTATION_RESULTS_TABLE, Lake
from dataplatform.reference import seed_rates
from dataplatform.settings import PostgresSettings
from pyspark_jobs import curation, quality
from tests.factories import claim, transaction
from tests.integration.lakehouse_support import (
    assert_engines_agree,
    day,
    delta_rs_version,
    lake,
    lake_spark,
    money,
    write_bronze,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TABLES = (
    "silver/finance/transactions",
    "gold/finance/daily_account_totals",
    "quarantine/curation/finance/transactions",
    EXPECTATION_RESULTS_TABLE,
)


@pytest.fixture(scope="module")
def reference(lake_spark: SparkSession, postgres_settings: PostgresSettings) -> curation.Reference:
    return curation.read_reference(lake_spark, postgres_settings)


def _curate(
    spark: SparkSession,
    lake: Lake,
    reference: curation.Reference,
    run_id: str,
    *,
    entity: Any = TRANSACTIONS,
    expectations_dir: Path | None = None,
) -> curation.CurationResult:
    return curation.curate_entity(
        spark,
        lake,
        entity,
        run_id=run_id,
        reference=reference,
        expectations=quality.load_expectations(entity, expectations_dir),
        reporting_currency="EUR",
    )


def _expected_gold(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Daily totals per account and currency, computed in plain Python from the records."""
    to_eur = {base: rate for base, quote, rate in seed_rates() if quote == "EUR"}
    to_eur["EUR"] = Decimal(1)
    totals: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for record in records:
        amount, currency = money(record["amount"]), record["currency"].upper()
        key = (day(record["timestamp"]), record["account_id"], currency)
        totals[key][0] += 1
        totals[key][1] += amount
        totals[key][2] += (amount * to_eur[currency]).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
    return {
        key: (count, total, "EUR", converted) for key, (count, total, converted) in totals.items()
    }


@pytest.fixture(params=["compiled", "interpreted"])
def codegen(request: pytest.FixtureRequest, lake_spark: SparkSession) -> Iterator[str]:
    """Spark's code generation on (the default), or off as in a small curation run
    (`curation.INTERPRETED_CONF`): both must curate the same rows to the same values."""
    conf = curation.INTERPRETED_CONF if request.param == "interpreted" else {}
    for key, value in conf.items():
        lake_spark.conf.set(key, value)
    try:
        yield request.param
    finally:
        for key in conf:
            lake_spark.conf.unset(key)


def test_curate_transactions_latest_wins_gold_matches_python_rerun_changes_nothing(
    lake_spark: SparkSession, lake: Lake, reference: curation.Reference, codegen: str
) -> None:
    a_v1 = transaction(
        transaction_id="A", timestamp="2024-03-01T10:00:00", amount="100", account_id="ACC-1"
    )
    a_v2 = transaction(
        transaction_id="A", timestamp="2024-03-01T11:00:00Z", amount="150", account_id="ACC-1"
    )
    b_v1 = transaction(transaction_id="B", amount="20", account_id="ACC-1")
    b_v2 = transaction(transaction_id="B", amount="25.5", account_id="ACC-1")
    c_v1 = transaction(
        transaction_id="C",
        timestamp="2024-03-01T09:00:00",
        amount="1000.5",
        currency="JPY",
        account_id="ACC-2",
    )
    d_future = transaction(transaction_id="D", timestamp="2099-01-01T00:00:00", account_id="ACC-1")
    e = transaction(
        transaction_id="E",
        timestamp="2024-03-02T08:00:00+02:00",
        amount="10",
        currency="eur",
        account_id="ACC-1",
    )
    write_bronze(
        lake_spark,
        lake,
        TRANSACTIONS,
        [
            (a_v1, T0),
            (a_v2, T0),
            (b_v1, T0),
            (b_v2, T0 + timedelta(minutes=1)),
            (c_v1, T0),
            (d_future, T0),
            (e, T0),
        ],
    )

    first = _curate(lake_spark, lake, reference, "r1")

    assert (first.rows_read, first.rows_quarantined, first.rows_merged) == (7, 1, 4)
    # A newer event of C moves it to another day; an older event of A is ignored.
    a_v0 = transaction(
        transaction_id="A", timestamp="2024-03-01T09:00:00", amount="999", account_id="ACC-1"
    )
    c_v2 = transaction(
        transaction_id="C",
        timestamp="2024-03-03T12:00:00",
        amount="2000",
        currency="JPY",
        account_id="ACC-2",
    )
    f = transaction(transaction_id="F", amount="7.77", currency="GBP", account_id="ACC-3")
    write_bronze(
        lake_spark,
        lake,
        TRANSACTIONS,
        [(a_v0, T0 + timedelta(hours=1)), (c_v2, T0 + timedelta(days=3)), (f, T0)],
    )

    second = _curate(lake_spark, lake, reference, "r2")

    assert (second.bronze_version_from, second.rows_read, second.rows_merged) == (2, 3, 3)
    silver = assert_engines_agree(lake_spark, lake, TABLES[0], ["transaction_id"])
    by_key = {row["transaction_id"]: row for row in silver}
    assert sorted(by_key) == ["A", "B", "C", "E", "F"]
    assert by_key["A"]["amount"] == Decimal("150") and by_key["A"]["curation_run_id"] == "r1"
    assert by_key["B"]["amount"] == Decimal("25.5")
    assert (by_key["C"]["amount"], by_key["C"]["event_date"]) == (Decimal("2000"), date(2024, 3, 3))
    assert (by_key["E"]["currency"], by_key["E"]["event_date"]) == ("EUR", date(2024, 3, 2))
    assert by_key["F"]["fx_rate"] == Decimal("1.1558288449")

    gold = assert_engines_agree(
        lake_spark, lake, TABLES[1], ["event_date", "account_id", "currency"]
    )
    expected = _expected_gold([a_v2, b_v2, c_v2, e, f])
    assert {
        (r["event_date"], r["account_id"], r["currency"]): (
            r["transaction_count"],
            r["total_amount"],
            r["reporting_currency"],
            r["total_amount_reporting"],
        )
        for r in gold
    } == expected

    quarantined = assert_engines_agree(lake_spark, lake, TABLES[2], ["quarantine_id"])
    assert [(r["record_key"], r["stage"], r["run_id"]) for r in quarantined] == [
        ("D", "expectation", "r1")
    ]
    assert quarantined[0]["reason"] == "failed expectation(s): event_time_not_in_future"

    results = assert_engines_agree(lake_spark, lake, TABLES[3], ["run_id", "expectation"])
    outcomes = {(r["run_id"], r["expectation"]): (r["rows_failed"], r["outcome"]) for r in results}
    assert outcomes[("r1", "amount_fits_currency_minor_units")] == (1, "warn")
    assert outcomes[("r1", "event_time_not_in_future")] == (1, "drop")
    assert outcomes[("r1", "currency_has_reference_data")] == (0, "pass")

    versions = {table: delta_rs_version(lake, table) for table in TABLES}
    rerun = _curate(lake_spark, lake, reference, "r3")

    assert rerun.noop
    assert {table: delta_rs_version(lake, table) for table in TABLES} == versions


def test_curate_claims_status_change_moves_gold_counts(
    lake_spark: SparkSession, lake: Lake, reference: curation.Reference
) -> None:
    one = claim(claim_id="C1", claim_type="auto", claim_status="submitted", claim_amount="100.25")
    two = claim(claim_id="C2", claim_type="auto", claim_status="submitted", claim_amount="50")
    three = claim(claim_id="C3", claim_type="home", claim_status="approved", claim_amount="10")
    write_bronze(lake_spark, lake, CLAIMS, [(one, T0), (two, T0), (three, T0)])
    _curate(lake_spark, lake, reference, "c1", entity=CLAIMS)
    paid = {**one, "timestamp": "2024-03-01T15:00:00", "claim_status": "paid"}
    write_bronze(lake_spark, lake, CLAIMS, [(paid, T0 + timedelta(hours=4))])

    _curate(lake_spark, lake, reference, "c2", entity=CLAIMS)

    silver = assert_engines_agree(lake_spark, lake, "silver/insurance/claims", ["claim_id"])
    assert {r["claim_id"]: r["claim_status"] for r in silver} == {
        "C1": "paid",
        "C2": "submitted",
        "C3": "approved",
    }
    gold = assert_engines_agree(
        lake_spark,
        lake,
        "gold/insurance/claims_daily",
        ["event_date", "claim_type", "claim_status"],
    )
    assert {
        (r["claim_type"], r["claim_status"]): (r["claim_count"], r["total_claim_amount"])
        for r in gold
    } == {
        ("auto", "paid"): (1, Decimal("100.25")),
        ("auto", "submitted"): (1, Decimal("50")),
        ("home", "approved"): (1, Decimal("10")),
    }


def test_curate_claims_with_dates_before_the_gregorian_switch(
    lake_spark: SparkSession, lake: Lake, reference: curation.Reference
) -> None:
    # The contract accepts any ISO 8601 year; schemathesis sends such records. Spark's default
    # Parquet calendar rebase refused to write them and stopped curation for every record.
    ancient = claim(
        claim_id="C-ANCIENT",
        timestamp="0848-11-30T08:04:54Z",
        incident_date="0284-05-02T19:31:05+13:52",
    )
    write_bronze(lake_spark, lake, CLAIMS, [(ancient, T0)])

    _curate(lake_spark, lake, reference, "ancient", entity=CLAIMS)

    silver = assert_engines_agree(lake_spark, lake, "silver/insurance/claims", ["claim_id"])
    assert [(r["claim_id"], r["incident_date"]) for r in silver] == [
        ("C-ANCIENT", datetime(284, 5, 2, 5, 39, 5, tzinfo=UTC))
    ]


FAIL_ON_LARGE = """\
table: silver/finance/transactions
expectations:
  - name: amount_below_limit
    description: test limit
    condition: amount < 1000
    action: fail
"""


def test_curate_fail_expectation_merges_nothing_and_quality_job_exits_nonzero(
    lake_spark: SparkSession, lake: Lake, reference: curation.Reference, tmp_path: Path
) -> None:
    (tmp_path / "finance_transactions.yaml").write_text(FAIL_ON_LARGE)
    write_bronze(
        lake_spark,
        lake,
        TRANSACTIONS,
        [(transaction(amount="10"), T0), (transaction(amount="5000"), T0)],
    )

    for attempt in ("f1", "f2"):
        with pytest.raises(
            quality.ExpectationFailedError, match=r"amount_below_limit: 1 of 2 rows fail"
        ):
            _curate(lake_spark, lake, reference, attempt, expectations_dir=tmp_path)

    assert delta_rs_version(lake, "silver/finance/transactions") == 0
    results = assert_engines_agree(
        lake_spark, lake, EXPECTATION_RESULTS_TABLE, ["run_id", "expectation"]
    )
    assert sorted((r["run_id"], r["outcome"]) for r in results) == [("f1", "fail"), ("f2", "fail")]

    _curate(lake_spark, lake, reference, "ok")
    code = quality.main(
        [
            "--entity",
            "finance/transactions",
            "--run-id",
            "q1",
            "--lake-prefix",
            lake.prefix,
            "--expectations-dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    checked = {
        (r["job"], r["run_id"]): (r["rows_evaluated"], r["rows_failed"], r["outcome"])
        for r in assert_engines_agree(
            lake_spark, lake, EXPECTATION_RESULTS_TABLE, ["run_id", "expectation"]
        )
    }
    assert checked[("quality", "q1")] == (2, 1, "fail")
    assert (
        quality.main(
            ["--entity", "finance/transactions", "--run-id", "q2", "--lake-prefix", lake.prefix]
        )
        == 0
    )


def test_curate_newer_version_dropped_by_expectation_keeps_older_valid_one(
    lake_spark: SparkSession, lake: Lake, reference: curation.Reference
) -> None:
    # Finding 3: one batch with the same id dated 2024 and 2205 (fails the `drop`
    # expectation event_time_not_in_future): the 2024 version must be in silver.
    valid = transaction(transaction_id="X", timestamp="2024-03-01T10:00:00", amount="10")
    future = transaction(transaction_id="X", timestamp="2205-03-01T10:00:00", amount="20")
    write_bronze(lake_spark, lake, TRANSACTIONS, [(valid, T0), (future, T0)])

    result = _curate(lake_spark, lake, reference, "x1")

    assert (result.rows_quarantined, result.rows_merged) == (1, 1)
    silver = assert_engines_agree(lake_spark, lake, TABLES[0], ["transaction_id"])
    assert [(r["transaction_id"], r["amount"], r["event_date"]) for r in silver] == [
        ("X", Decimal("10"), date(2024, 3, 1))
    ]
    quarantined = assert_engines_agree(lake_spark, lake, TABLES[2], ["quarantine_id"])
    assert [
        (r["record_key"], r["stage"], json.loads(r["payload"])["timestamp"]) for r in quarantined
    ] == [("X", "expectation", "2205-03-01T10:00:00")]


def test_curate_gold_failure_is_recomputed_by_the_retry(
    lake_spark: SparkSession,
    lake: Lake,
    reference: curation.Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Finding 9: the gold step fails after the silver MERGE committed.
    records = [
        transaction(transaction_id="G1", amount="10", currency="EUR", account_id="ACC-G"),
        transaction(transaction_id="G2", amount="2.5", currency="EUR", account_id="ACC-G"),
    ]
    write_bronze(lake_spark, lake, TRANSACTIONS, [(record, T0) for record in records])
    real_recompute = curation.recompute_gold

    def gold_step_fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected: the gold step failed")

    monkeypatch.setattr(curation, "recompute_gold", gold_step_fails)
    with pytest.raises(RuntimeError, match="injected"):
        _curate(lake_spark, lake, reference, "g1")
    monkeypatch.setattr(curation, "recompute_gold", real_recompute)
    merged_by_failed_run = delta_rs_version(lake, TABLES[0])
    assert len(assert_engines_agree(lake_spark, lake, TABLES[0], ["transaction_id"])) == 2
    assert curation.last_processed_version(lake, TRANSACTIONS) == -1

    retry = _curate(lake_spark, lake, reference, "g2")

    assert retry.affected_dates == 1
    assert retry.silver_version is not None and retry.silver_version >= merged_by_failed_run
    gold = assert_engines_agree(
        lake_spark, lake, TABLES[1], ["event_date", "account_id", "currency"]
    )
    assert [
        (r["event_date"], r["account_id"], r["transaction_count"], r["total_amount"]) for r in gold
    ] == [(date(2024, 3, 1), "ACC-G", 2, Decimal("12.5"))]
    assert curation.last_processed_version(lake, TRANSACTIONS) == retry.bronze_version_to


def test_curation_job_with_nothing_new_starts_no_spark_and_writes_nothing(
    lake_spark: SparkSession, lake: Lake, reference: curation.Reference
) -> None:
    write_bronze(lake_spark, lake, TRANSACTIONS, [(transaction(transaction_id="N1"), T0)])
    write_bronze(lake_spark, lake, CLAIMS, [(claim(claim_id="N2"), T0)])
    for entity in (TRANSACTIONS, CLAIMS):
        _curate(lake_spark, lake, reference, "n0", entity=entity)
    tables = (*TABLES, "silver/insurance/claims", "gold/insurance/claims_daily", STATE)
    versions = {table: delta_rs_version(lake, table) for table in tables}

    # The job in a process of its own, every entity: it reads the Delta logs and stops.
    job = subprocess.run(
        [sys.executable, "-m", "pyspark_jobs.curation", "--lake-prefix", lake.prefix],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert job.returncode == 0, job.stderr[-3000:]
    assert "starting Spark session" not in job.stderr
    assert job.stderr.count("already curated; nothing to do") == 2, job.stderr[-3000:]
    assert {table: delta_rs_version(lake, table) for table in tables} == versions
    # A new bronze version of one entity: that one needs Spark, the other still does not.
    write_bronze(lake_spark, lake, TRANSACTIONS, [(transaction(transaction_id="N3"), T0)])
    assert curation.skip_without_spark(lake, TRANSACTIONS, run_id="n1") is None
    skipped = curation.skip_without_spark(lake, CLAIMS, run_id="n1")
    assert skipped is not None and skipped.noop


def test_a_small_run_is_interpreted_and_a_large_or_unknown_one_compiled(
    lake_spark: SparkSession, lake: Lake, reference: curation.Reference
) -> None:
    def new_rows() -> int | None:
        versions = curation.pending_bronze_versions(lake, TRANSACTIONS)
        return curation.new_bronze_rows(lake, TRANSACTIONS, *versions)

    def conf(max_rows: int, *, reprocessing: bool = False) -> dict[str, str]:
        return curation.session_conf_for([new_rows()], reprocessing=reprocessing, max_rows=max_rows)

    write_bronze(lake_spark, lake, TRANSACTIONS, [(transaction(transaction_id="S1"), T0)])
    # Before the first finished run the size of the backlog is not known.
    assert new_rows() is None and conf(10**6) == {}
    _curate(lake_spark, lake, reference, "s0")
    assert new_rows() == 0
    for ids in (["S2", "S3"], ["S4"]):
        write_bronze(
            lake_spark, lake, TRANSACTIONS, [(transaction(transaction_id=i), T0) for i in ids]
        )

    # Counted from the two new commits' metrics: 3 rows.
    assert new_rows() == 3
    assert conf(3) == curation.INTERPRETED_CONF
    assert conf(2) == {} and conf(0) == {} and conf(3, reprocessing=True) == {}


def test_curation_skips_nothing_before_the_first_finished_run(lake: Lake) -> None:
    # No state yet: the first run creates the tables, which takes Spark.
    assert curation.skip_without_spark(lake, TRANSACTIONS, run_id="f0") is None
