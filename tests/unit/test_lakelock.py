"""The commit lock's key, the Spark conf that installs the locked log store, and bronze OPTIMIZE's
default predicate (no services: the lock itself is tested in test_delta_commit_lock.py)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from dataplatform.lakelock import table_lock_key
from dataplatform.settings import PostgresSettings
from pyspark_jobs.maintenance import CLOSED_BRONZE_PARTITIONS, default_optimize_where
from pyspark_jobs.session import _SECRET_KEYS, LOCKED_LOG_STORE, commit_lock_conf


@pytest.mark.parametrize(
    "uri",
    [
        "s3://lakehouse/tests/x/bronze/finance/transactions",
        "s3a://lakehouse/tests/x/bronze/finance/transactions",
        "s3a://lakehouse/tests/x/bronze/finance/transactions/",
    ],
)
def test_table_lock_key_any_scheme_same_key(uri: str) -> None:
    assert table_lock_key(uri) == "lakehouse/tests/x/bronze/finance/transactions"


@pytest.mark.parametrize("uri", ["bronze/finance/transactions", "s3:///bronze/x"])
def test_table_lock_key_without_bucket_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="not a table URI with a bucket"):
        table_lock_key(uri)


def test_commit_lock_conf_installs_log_store_and_hides_password() -> None:
    postgres = PostgresSettings(
        host="db",
        port=6543,
        db="lake",
        user="u",
        password=SecretStr("s3cr3t"),
        commit_lock_timeout_s=2.5,
    )
    conf = commit_lock_conf(postgres)
    assert conf["spark.delta.logStore.s3a.impl"] == LOCKED_LOG_STORE
    assert conf["spark.hadoop.dataplatform.lakelock.jdbc.url"] == "jdbc:postgresql://db:6543/lake"
    assert conf["spark.hadoop.dataplatform.lakelock.timeout.ms"] == "2500"
    secret = [key for key, value in conf.items() if value == "s3cr3t"]
    assert secret == ["spark.hadoop.dataplatform.lakelock.jdbc.password"]
    assert set(secret) <= _SECRET_KEYS


@pytest.mark.parametrize(
    ("table", "where", "expected"),
    [
        ("bronze/finance/transactions", None, CLOSED_BRONZE_PARTITIONS),
        ("bronze/finance/transactions", "ingest_date = '2026-01-01'", "ingest_date = '2026-01-01'"),
        ("silver/finance/transactions", None, None),
    ],
)
def test_default_optimize_where_bronze_closed_partitions_unless_told(
    table: str, where: str | None, expected: str | None
) -> None:
    assert default_optimize_where(table, where) == expected
