"""One writer per Delta table: Spark (the JVM log store) and the delta-rs exporter both wait for
the table's commit lock in Postgres before they commit, on the real Postgres, S3 and Spark."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from deltalake import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import TRANSACTIONS
from dataplatform.exporter import LakeExporter
from dataplatform.lakelock import CommitLockTimeoutError, table_commit_lock
from dataplatform.settings import ExporterSettings, PostgresSettings, S3Settings
from fastapi_app.testing import temporary_schema
from pyspark_jobs.lake import Lake
from tests.integration.lakehouse_support import delta_rs_version, lake, lake_spark, wait_for
from tests.integration.test_exporter_exactly_once import _bronze_ids, _insert_outbox

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: How long a writer queued on the lock is watched not committing.
BLOCKED_S = 5.0


class Background:
    """Runs one call in a thread and keeps its outcome."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self._call = call
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as exc:  # handed to the test thread by `join`
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"still not done after {timeout_s:.0f} s"
        if self.error is not None:
            raise self.error


@contextmanager
def held_by_sql(postgres: PostgresSettings, key: str) -> Iterator[None]:
    """The lock of `key` held by another session, spelled out in SQL (not via lakelock)."""
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        yield
        conn.rollback()


def _waiting_for_lock(postgres: PostgresSettings, key: str) -> bool:
    """Whether a session is queued on the advisory lock of `key` (not yet granted)."""
    with psycopg.connect(postgres.conninfo()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks"
            " WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1"
            " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)",
            (key,),
        ).fetchone()
    return bool(row and row[0])


def _append(spark: SparkSession, uri: str, first: int) -> None:
    frame = spark.range(first, first + 10).withColumnRenamed("id", "n")
    frame.write.format("delta").mode("append").save(uri)


def test_spark_append_waits_for_table_commit_lock_then_commits(
    lake_spark: SparkSession, lake: Lake, postgres_settings: PostgresSettings
) -> None:
    table = "locktest/numbers"
    uri = lake.uri(table)  # s3a://, as Spark writes it
    _append(lake_spark, uri, 0)
    assert delta_rs_version(lake, table) == 0

    # Held from Python under the s3:// spelling: the key has no scheme, so Spark's s3a:// commit
    # to the same table must wait for it.
    key = f"{lake.s3.bucket}/{lake.relative(table)}"
    with table_commit_lock(postgres_settings, lake.uri(table, scheme="s3")):
        writer = Background(lambda: _append(lake_spark, uri, 10))
        # The append has written its data files and queues for the lock to put N.json.
        wait_for(lambda: _waiting_for_lock(postgres_settings, key), 120, "Spark at the lock")
        time.sleep(BLOCKED_S)
        assert writer.running, "the append finished while another writer held the lock"
        assert delta_rs_version(lake, table) == 0, "Spark committed while the lock was held"
    writer.join(120)
    assert delta_rs_version(lake, table) == 1
    numbers = sorted(row.n for row in lake_spark.read.format("delta").load(uri).collect())
    assert numbers == list(range(20))


def test_spark_commit_lock_timeout_fails_commit_with_clear_error(
    lake_spark: SparkSession, lake: Lake, postgres_settings: PostgresSettings
) -> None:
    table = "locktest/timeout"
    uri = lake.uri(table)
    _append(lake_spark, uri, 0)
    # SQL conf keys reach the Hadoop conf Delta hands its log store: a short wait for this test.
    lake_spark.conf.set("dataplatform.lakelock.timeout.ms", "1500")
    try:
        with (
            held_by_sql(postgres_settings, f"{lake.s3.bucket}/{lake.relative(table)}"),
            pytest.raises(Py4JJavaError) as failure,
        ):
            _append(lake_spark, uri, 10)
    finally:
        lake_spark.conf.unset("dataplatform.lakelock.timeout.ms")
    message = str(failure.value.java_exception)
    assert "timed out after 1500 ms waiting for the commit lock of Delta table" in message
    assert f"{lake.s3.bucket}/{lake.relative(table)}" in message
    assert delta_rs_version(lake, table) == 0


@pytest.fixture
def exporter_settings(
    s3_settings: S3Settings, postgres_settings: PostgresSettings
) -> Iterator[ExporterSettings]:
    prefix = f"tests/{uuid.uuid4().hex[:12]}"
    with temporary_schema(postgres_settings) as schema:
        yield ExporterSettings().model_copy(update={"db_schema": schema, "lake_prefix": prefix})
    delete_prefix(s3_settings, prefix)


def test_exporter_write_waits_for_table_commit_lock_then_commits(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    exporter_settings: ExporterSettings,
) -> None:
    expected = _insert_outbox(postgres_settings, exporter_settings.db_schema, 25)
    exporter = LakeExporter(postgres_settings, s3_settings, exporter_settings)
    uri = exporter.table_uri(TRANSACTIONS)
    key = f"{s3_settings.bucket}/{exporter_settings.lake_prefix}/bronze/finance/transactions"
    options = s3_settings.delta_storage_options()

    with held_by_sql(postgres_settings, key):
        export = Background(exporter.export_once)
        wait_for(lambda: _waiting_for_lock(postgres_settings, key), 60, "the exporter at the lock")
        time.sleep(BLOCKED_S)
        assert export.running, "the export finished while another writer held the lock"
        assert not DeltaTable.is_deltatable(uri, storage_options=options), (
            "delta-rs committed while the lock was held"
        )
    export.join(120)
    assert sorted(_bronze_ids(exporter, s3_settings)) == sorted(expected)


def test_table_commit_lock_held_elsewhere_times_out_naming_table(
    postgres_settings: PostgresSettings,
) -> None:
    key = f"lakehouse/tests/{uuid.uuid4().hex[:12]}/bronze/finance/transactions"
    with (
        held_by_sql(postgres_settings, key),
        pytest.raises(CommitLockTimeoutError, match=f"commit lock of Delta table {key}"),
        table_commit_lock(postgres_settings, f"s3a://{key}/", timeout_s=1),
    ):
        pytest.fail("the lock was granted while another session held it")
