"""Lakehouse plumbing without Spark: table layout, heartbeat, expectations files, guards."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from dataplatform.contracts import CLAIMS, ENTITIES, TRANSACTIONS
from dataplatform.lake import (
    Lake,
    RetentionGuardError,
    check_retention,
    entity_by_path,
    heartbeat_healthy,
    read_heartbeat,
    write_heartbeat,
)
from dataplatform.reference import seed_rates
from dataplatform.settings import S3Settings
from pyspark_jobs.landing import LandingDataLossError, explain_failure, reset_instructions
from pyspark_jobs.launch import (
    class_data_sharing_options,
    jars_include_delta,
    spark_submit_argv,
)
from pyspark_jobs.quality import load_expectations

S3 = S3Settings(bucket="lakehouse")


def test_lake_uri_real_layout_and_test_prefix() -> None:
    real = Lake(s3=S3)
    isolated = Lake(s3=S3, prefix="tests/abc")

    assert real.table("bronze", TRANSACTIONS) == "s3a://lakehouse/bronze/finance/transactions"
    assert real.gold(CLAIMS, scheme="s3") == "s3://lakehouse/gold/insurance/claims_daily"
    assert real.checkpoint("landing-x") == "s3a://lakehouse/_checkpoints/landing-x"
    assert isolated.table("silver", CLAIMS) == "s3a://lakehouse/tests/abc/silver/insurance/claims"
    assert isolated.checkpoint("j") == "s3a://lakehouse/tests/abc/_checkpoints/j"


def test_entity_by_path_unknown_lists_known() -> None:
    assert entity_by_path("insurance/claims") is CLAIMS
    with pytest.raises(ValueError, match="finance/transactions, insurance/claims"):
        entity_by_path("finance/claims")


def test_heartbeat_fresh_running_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "run" / "heartbeat.json"
    assert not heartbeat_healthy(path)

    write_heartbeat(path, {"status": "running", "queries": {}})

    beat = read_heartbeat(path)
    assert beat is not None and beat["pid"] == os.getpid()
    assert heartbeat_healthy(path, max_age_s=5)


def test_heartbeat_stale_or_failed_is_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    write_heartbeat(path, {"status": "failed"})
    assert not heartbeat_healthy(path, max_age_s=60)

    stale = datetime.now(UTC) - timedelta(minutes=5)
    path.write_text(json.dumps({"status": "running", "updated_at": stale.isoformat()}))
    assert not heartbeat_healthy(path, max_age_s=60)


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.topic)
def test_expectations_file_loads_with_every_action_known(entity: object) -> None:
    expectations = load_expectations(entity)  # type: ignore[arg-type]

    assert expectations
    assert {item.action for item in expectations} <= {"warn", "drop", "fail"}


def test_expectations_file_malformed_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "finance_transactions.yaml").write_text(
        "table: t\nexpectations:\n"
        "  - name: x\n    description: d\n    condition: a\n    action: explode\n"
    )
    with pytest.raises(ValueError, match=r"expectations\.0\.action"):
        load_expectations(TRANSACTIONS, tmp_path)


def test_vacuum_retention_guard_refuses_short_retention_unless_forced() -> None:
    with pytest.raises(RetentionGuardError, match=r"below 168 h .* --force"):
        check_retention("silver/finance/transactions", 24, force=False)
    check_retention("silver/finance/transactions", 24, force=True)
    check_retention("silver/finance/transactions", 168, force=False)


def test_seed_rates_cross_through_euro() -> None:
    rates = {(base, quote): rate for base, quote, rate in seed_rates()}

    assert rates[("EUR", "USD")] == Decimal("1.0956000000")
    assert rates[("USD", "EUR")] == Decimal("0.9127418766")
    assert rates[("JPY", "USD")] == Decimal("0.0070357051")
    assert ("EUR", "EUR") not in rates


def test_spark_submit_argv_passes_jars_and_interpreter() -> None:
    argv, env = spark_submit_argv("pyspark_jobs/curation.py", ["--entity", "finance/transactions"])

    jars = argv[argv.index("--jars") + 1]
    assert "delta-spark" in jars and "spark-sql-kafka" in jars
    assert argv[-3:] == ["pyspark_jobs/curation.py", "--entity", "finance/transactions"]
    assert env["PYSPARK_PYTHON"].endswith("python")


def test_jars_include_delta_reads_lists_and_globs(tmp_path: Path) -> None:
    (tmp_path / "delta-spark_2.12-3.3.2.jar").touch()
    (tmp_path / "hadoop-aws-3.3.4.jar").touch()
    assert jars_include_delta(
        f"{tmp_path}/hadoop-aws-3.3.4.jar,{tmp_path}/delta-spark_2.12-3.3.2.jar"
    )
    # compose's AIRFLOW_VAR_SPARK_JARS is a glob, which Spark expands itself
    assert jars_include_delta(f"{tmp_path}/*.jar")
    assert jars_include_delta(f"file:{tmp_path}/*.jar")
    assert not jars_include_delta(f"{tmp_path}/hadoop-*.jar")
    assert not jars_include_delta("")


def test_explain_failure_offsets_backwards_says_how_to_reset() -> None:
    spark_error = RuntimeError(
        "Partition finance.transactions.v1-0's offset was changed from 10 to 3, some data may "
        "have been missed."
    )

    error = explain_failure(spark_error, TRANSACTIONS, "s3a://lakehouse/_checkpoints/x")

    assert isinstance(error, LandingDataLossError)
    assert "offset was changed from 10 to 3" in str(error)
    assert "dataplatform lake reset-landing --entity finance/transactions" in str(error)
    assert explain_failure(RuntimeError("disk full"), TRANSACTIONS, "c") is None
    assert "s3a://lakehouse/_checkpoints/x" in reset_instructions(
        TRANSACTIONS, "s3a://lakehouse/_checkpoints/x"
    )


def test_class_data_sharing_makes_an_archive_then_maps_it_and_remakes_a_broken_one(
    tmp_path: Path,
) -> None:
    folder, java = tmp_path / "cds", tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("")
    jar = tmp_path / "a.jar"
    jar.write_bytes(b"jar")
    # Without the JDK's base archive the JVM would refuse to start with the options: none.
    assert class_data_sharing_options(folder, java, [jar]) == ""
    (tmp_path / "jdk" / "lib" / "server").mkdir(parents=True)
    (tmp_path / "jdk" / "lib" / "server" / "classes.jsa").write_bytes(b"base")

    first = class_data_sharing_options(folder, java, [jar])
    assert first.startswith("-XX:ArchiveClassesAtExit=")
    archive = Path(first.split()[0].split("=", 1)[1])
    assert archive.parent == folder and not archive.exists()

    # A dump cut short has no header: made again, not mapped.
    archive.write_bytes(b"\0" * 64)
    assert class_data_sharing_options(folder, java, [jar]) == first
    archive.write_bytes(bytes.fromhex("a8ab0bf0") + b"\0" * 60)
    assert class_data_sharing_options(folder, java, [jar]).startswith(
        f"-XX:SharedArchiveFile={archive} "
    )

    # Another jar set names another archive, and making it removes the old one.
    jar.write_bytes(b"a newer jar")
    os.utime(jar, ns=(1, 1))
    again = class_data_sharing_options(folder, java, [jar])
    assert again.startswith("-XX:ArchiveClassesAtExit=") and again != first
    assert not archive.exists()
