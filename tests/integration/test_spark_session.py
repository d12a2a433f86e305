"""`build_spark_session` against the real S3 server: Delta on s3a, read back by Spark and delta-rs.

Needs the Maven-resolved jars (`.jars/spark`) and the S3 endpoint of `s3_settings`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from delta.tables import DeltaTable as SparkDeltaTable
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dataplatform.clients.s3 import delete_prefix, s3_client
from dataplatform.contracts import TRANSACTIONS, FinancialTransactionIn
from dataplatform.settings import S3Settings
from pyspark_jobs.schemas import contract_schema
from pyspark_jobs.session import SparkJarsMissingError, build_spark_session, spark_jars

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: `_transaction(1)`'s timestamp, 12:00:01.123456+02:00, in UTC.
EXPECTED_FT_0001_AT = datetime(2024, 1, 1, 10, 0, 1, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def lake(s3_settings: S3Settings) -> S3Settings:
    """The S3 settings, once the lakehouse bucket is known to answer."""
    try:
        s3_client(s3_settings).head_bucket(Bucket=s3_settings.bucket)
    except (BotoCoreError, ClientError) as exc:
        pytest.fail(
            f"S3 bucket {s3_settings.bucket!r} at {s3_settings.endpoint_url} is not reachable "
            f"({exc}); start the native services (`dataplatform up`) or point S3_ENDPOINT_URL, "
            "S3_ACCESS_KEY and S3_SECRET_KEY at a running S3 server with that bucket"
        )
    return s3_settings


@pytest.fixture(scope="module")
def spark(lake: S3Settings) -> Iterator[SparkSession]:
    session = build_spark_session("test-spark-session", settings=lake)
    yield session
    session.stop()


@pytest.fixture
def prefix(lake: S3Settings) -> Iterator[str]:
    """A fresh folder of the bucket for one test, deleted afterwards."""
    relative = f"tests/spark-session/{uuid.uuid4().hex}"
    yield relative
    delete_prefix(lake, relative)


def _transaction(
    n: int, *, amount: str = "10.5", category: str | None = "groceries"
) -> dict[str, Any]:
    record = FinancialTransactionIn.model_validate(
        {
            "transaction_id": f"FT-{n:04d}",
            "timestamp": f"2024-01-01T12:00:{n % 60:02d}.123456+02:00",
            "account_id": f"ACC-{n % 3}",
            "amount": amount,
            "currency": "usd",
            "transaction_type": "debit",
            "category": category,
        }
    )
    return record.model_dump()


def _transactions_df(spark: SparkSession, records: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame(records, schema=contract_schema(FinancialTransactionIn))


def _delta_rs_rows(lake: S3Settings, relative: str) -> dict[str, dict[str, Any]]:
    table = DeltaTable(lake.lake_uri(relative), storage_options=lake.delta_storage_options())
    return {row[TRANSACTIONS.key_field]: row for row in table.to_pyarrow_table().to_pylist()}


def test_spark_jars_missing_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        SparkJarsMissingError, match=r"quick_start\.sh.*dependency:copy-dependencies"
    ):
        spark_jars(tmp_path / "spark")


def test_build_spark_session_applies_local_defaults(spark: SparkSession) -> None:
    conf = spark.sparkContext.getConf()

    assert spark.version == "3.5.7"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.databricks.delta.schema.autoMerge.enabled") == "false"
    assert {Path(jar).name.rsplit("-", 1)[0] for jar in conf.get("spark.jars").split(",")} >= {
        "delta-spark_2.12",
        "hadoop-aws",
        "spark-sql-kafka-0-10_2.12",
    }


def _create_transactions_table(spark: SparkSession, uri: str) -> None:
    # A DataFrame write would create every column nullable (Spark's file sources drop NOT NULL);
    # creating the table from the contract schema first keeps the contract's NOT NULLs.
    (
        SparkDeltaTable.createIfNotExists(spark)
        .location(uri)
        .addColumns(contract_schema(FinancialTransactionIn))
        .execute()
    )


def test_write_delta_table_s3a_reads_back_in_spark_and_delta_rs(
    spark: SparkSession, lake: S3Settings, prefix: str
) -> None:
    relative = f"{prefix}/transactions"
    uri = lake.lake_uri(relative, scheme="s3a")
    records = [_transaction(n, amount=f"{n}.000001") for n in range(1, 51)]

    _create_transactions_table(spark, uri)
    _transactions_df(spark, records).write.format("delta").mode("append").save(uri)

    back = spark.read.format("delta").load(uri)
    assert back.schema == contract_schema(FinancialTransactionIn)
    assert back.count() == 50
    # unix_micros is independent of the Python process's time zone, unlike collect().
    first = back.where("transaction_id = 'FT-0001'").selectExpr(
        "amount", "currency", "unix_micros(timestamp) AS micros"
    )
    assert first.collect()[0].asDict() == {
        "amount": Decimal("1.000001"),
        "currency": "USD",
        "micros": (EXPECTED_FT_0001_AT - datetime(1970, 1, 1, tzinfo=UTC))
        // timedelta(microseconds=1),
    }
    rows = _delta_rs_rows(lake, relative)
    assert len(rows) == 50
    assert rows["FT-0001"]["amount"] == Decimal("1.000001")
    assert rows["FT-0001"]["timestamp"] == EXPECTED_FT_0001_AT
    assert rows["FT-0001"]["merchant_id"] is None


def test_write_delta_table_s3a_refuses_null_in_required_column(
    spark: SparkSession, lake: S3Settings, prefix: str
) -> None:
    uri = lake.lake_uri(f"{prefix}/transactions", scheme="s3a")
    _create_transactions_table(spark, uri)
    record = _transaction(1)
    bad = spark.createDataFrame(
        [record], schema=contract_schema(FinancialTransactionIn)
    ).withColumn("account_id", F.lit(None).cast("string"))

    with pytest.raises(Exception, match="NOT NULL constraint violated"):
        bad.write.format("delta").mode("append").save(uri)
    assert spark.read.format("delta").load(uri).count() == 0


def test_merge_delta_table_s3a_updates_and_inserts_on_key(
    spark: SparkSession, lake: S3Settings, prefix: str
) -> None:
    relative = f"{prefix}/transactions"
    uri = lake.lake_uri(relative, scheme="s3a")
    _transactions_df(spark, [_transaction(n) for n in range(10)]).write.format("delta").save(uri)
    changes = [_transaction(n, amount="99", category=None) for n in range(8, 12)]

    (
        SparkDeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(_transactions_df(spark, changes).alias("s"), "t.transaction_id = s.transaction_id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )

    table = DeltaTable(lake.lake_uri(relative), storage_options=lake.delta_storage_options())
    assert table.version() == 1
    assert table.history(1)[0]["operation"] == "MERGE"
    rows = _delta_rs_rows(lake, relative)
    assert sorted(rows) == [f"FT-{n:04d}" for n in range(12)]
    assert {key: (row["amount"], row["category"]) for key, row in rows.items()} == {
        f"FT-{n:04d}": (
            Decimal("99") if n >= 8 else Decimal("10.5"),
            None if n >= 8 else "groceries",
        )
        for n in range(12)
    }
    assert spark.read.format("delta").load(uri).where("amount = 99").count() == 4


def test_stream_delta_to_delta_s3a_checkpoint_resumes(
    spark: SparkSession, lake: S3Settings, prefix: str
) -> None:
    source = lake.lake_uri(f"{prefix}/source", scheme="s3a")
    sink = lake.lake_uri(f"{prefix}/sink", scheme="s3a")
    checkpoint = lake.lake_uri(f"{prefix}/_checkpoints/copy", scheme="s3a")

    def run_stream() -> None:
        query = (
            spark.readStream.format("delta")
            .load(source)
            .writeStream.format("delta")
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start(sink)
        )
        query.awaitTermination(300)
        assert query.exception() is None

    _transactions_df(spark, [_transaction(n) for n in range(5)]).write.format("delta").save(source)
    run_stream()
    _transactions_df(spark, [_transaction(n) for n in range(5, 8)]).write.format("delta").mode(
        "append"
    ).save(source)
    run_stream()

    # Exactly once across two runs: the second run reads only the second commit of the source.
    assert sorted(_delta_rs_rows(lake, f"{prefix}/sink")) == [f"FT-{n:04d}" for n in range(8)]
    assert spark.read.format("delta").load(sink).count() == 8
