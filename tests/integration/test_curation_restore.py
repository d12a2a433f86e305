"""Time travel: after a bad curation run, `dataplatform lake restore` brings silver back to the
version before it, and the restored content matches what was there, row for row."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from dataplatform.contracts import TRANSACTIONS
from dataplatform.lake import Lake
from dataplatform.settings import PostgresSettings
from pyspark_jobs import curation, maintenance, quality
from tests.factories import transaction
from tests.integration.lakehouse_support import (
    ROOT,
    assert_engines_agree,
    delta_rs_rows,
    delta_rs_version,
    lake,
    lake_spark,
    write_bronze,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
SILVER = "silver/finance/transactions"
GOLD = "gold/finance/daily_account_totals"


def _key(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["transaction_id"]: row for row in rows}


def test_restore_silver_after_bad_run_matches_previous_content(
    lake_spark: SparkSession, lake: Lake, postgres_settings: PostgresSettings
) -> None:
    reference = curation.read_reference(lake_spark, postgres_settings)
    expectations = quality.load_expectations(TRANSACTIONS)
    good = [transaction(amount="10.00") for _ in range(5)]
    write_bronze(lake_spark, lake, TRANSACTIONS, [(r, T0) for r in good])
    curation.curate_entity(
        lake_spark,
        lake,
        TRANSACTIONS,
        run_id="good",
        reference=reference,
        expectations=expectations,
    )
    good_silver, good_gold = delta_rs_rows(lake, SILVER), delta_rs_rows(lake, GOLD)
    silver_version, gold_version = delta_rs_version(lake, SILVER), delta_rs_version(lake, GOLD)
    # A faulty upstream release resends every record with amounts a thousand times too big.
    bad = [{**r, "timestamp": "2024-03-01T13:00:00", "amount": "10000.00"} for r in good]
    write_bronze(lake_spark, lake, TRANSACTIONS, [(r, T0 + timedelta(hours=1)) for r in bad])
    curation.curate_entity(
        lake_spark, lake, TRANSACTIONS, run_id="bad", reference=reference, expectations=expectations
    )
    assert {row["amount"] for row in delta_rs_rows(lake, SILVER)} != {
        row["amount"] for row in good_silver
    }

    restored = subprocess.run(
        [
            str(Path(sys.executable).parent / "dataplatform"),
            "lake",
            "restore",
            "--table",
            SILVER,
            "--version",
            str(silver_version),
            "--lake-prefix",
            lake.prefix,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    maintenance.restore(lake_spark, lake, GOLD, version=gold_version)

    assert restored.returncode == 0, restored.stderr[-2000:]
    assert json.loads(restored.stdout.strip().splitlines()[-1])["restored_to"] == {
        "version": silver_version
    }
    assert delta_rs_version(lake, SILVER) == silver_version + 2
    assert _key(assert_engines_agree(lake_spark, lake, SILVER, ["transaction_id"])) == _key(
        good_silver
    )
    assert sorted(map(str, delta_rs_rows(lake, GOLD))) == sorted(map(str, good_gold))
    # The bad bronze versions stay processed: the next scheduled run does not reapply them.
    assert curation.curate_entity(
        lake_spark,
        lake,
        TRANSACTIONS,
        run_id="next",
        reference=reference,
        expectations=expectations,
    ).noop
    assert _key(delta_rs_rows(lake, SILVER)) == _key(good_silver)
