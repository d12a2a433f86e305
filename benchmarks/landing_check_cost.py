"""What the landing contract check and the replay guard cost per micro-batch, on local Spark.

No Kafka, S3 or platform: Kafka-shaped rows of valid transactions (the ingestor's records) are
cached in memory in three partitions, as Spark's Kafka source delivers a topic's, and each
micro-batch goes through the landing transforms (`kafka_to_checked`, `to_bronze`, one file)
into a local Delta table as `BatchWriter` does (cached, counted while bronze is written), with
one of two checks and one of two appends:

* check `udf`: every record through the pydantic contract in the Python UDF (the control, and
  what landing runs), or `jvm`: the JVM check with the Python fallback
  (`transforms.contract_check`);
* append `txn`: every append with `txnAppId`/`txnVersion` (Delta's per-batch transaction
  lookup, before), or `tagged`: with the `userMetadata` tag only, as every batch but a run's
  first now appends.

`old` is udf+txn (landing before this change), `udf+tagged` is landing now; `jvm+txn` and `new`
(jvm+tagged) add the JVM check. Variants run interleaved in one session, each into its own
table, so the tables grow alike; medians over the measured batches.

    .venv/bin/python benchmarks/landing_check_cost.py --rows 2500 --batches 20

The ratio column is against `old` when it runs, else against the first variant listed.
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from dataplatform.contracts import TRANSACTIONS
from dataplatform.samples import transaction
from pyspark_jobs import transforms

#: Signs the ingest ids landing computes (any value: nothing reads them back here).
SECRET = b"benchmark-receipt-secret"

VARIANTS = ("old", "new", "jvm+txn", "udf+tagged")
_PARTS = {"old": ("udf", "txn"), "new": ("jvm", "tagged"), "jvm+txn": ("jvm", "txn")}
_PARTS["udf+tagged"] = ("udf", "tagged")
#: The columns of Spark's Kafka source with headers.
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "headers array<struct<key: string, value: binary>>"
)


def kafka_rows(spark: SparkSession, rows: int) -> DataFrame:
    """`rows` valid transactions as Kafka source rows, cached in three partitions."""
    rng = random.Random(7)  # noqa: S311 - reproducible sample data
    now = datetime.now(UTC)
    data = []
    for offset in range(rows):
        record = transaction(rng)
        headers = [("ingest_id", str(uuid.uuid4()).encode())]
        key = record["transaction_id"].encode()
        data.append(
            (key, orjson.dumps(record), TRANSACTIONS.topic, offset % 3, offset, now, headers)
        )
    source = spark.createDataFrame(data, KAFKA_SCHEMA).repartition(3).cache()
    source.count()
    return source


def one_batch(source: DataFrame, variant: str, table: str, batch_id: int) -> None:
    """One landing micro-batch of `variant` into the Delta table at `table`."""
    check, append = _PARTS[variant]
    checked = source.transform(
        transforms.kafka_to_checked,
        TRANSACTIONS,
        epoch=1,
        receipt_secret=SECRET,
        jvm_check=check == "jvm",
    )
    # As `BatchWriter` does: the checked rows cached, counted while bronze is written.
    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    error = F.col(f"{transforms.CHECK_COLUMN}.error")
    observed = Observation(f"bench-{variant}-{batch_id}")
    counts = [F.count_if(error.isNull()).alias("valid"), F.count_if(error.isNotNull()).alias("bad")]
    writer = (
        checked.observe(observed, *counts)
        .coalesce(1)
        .transform(transforms.to_bronze)
        .write.format("delta")
        .mode("append")
        .option("userMetadata", f"bench@{batch_id}")
    )
    if append == "txn":
        writer = writer.option("txnAppId", "bench").option("txnVersion", batch_id)
    try:
        writer.save(table)
        if observed.get["bad"]:
            raise AssertionError(f"{variant}: {observed.get['bad']} sample records refused")
    finally:
        checked.unpersist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2500, help="rows per micro-batch")
    parser.add_argument("--batches", type=int, default=20, help="measured batches per variant")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured batches first")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark conf for the session (repeatable), e.g. JVM options of the driver",
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]

    from pyspark_jobs.launch import start_job_session

    extra_conf = dict(item.split("=", 1) for item in args.conf)
    spark = start_job_session("landing-check-cost", extra_conf=extra_conf)
    spark.sparkContext.setLogLevel("ERROR")
    root = Path(tempfile.mkdtemp(prefix="landing-check-cost-"))
    try:
        source = kafka_rows(spark, args.rows)
        empty = spark.createDataFrame([], KAFKA_SCHEMA)
        tables = {v: str(root / v.replace("+", "-")) for v in variants}
        for table in tables.values():
            # The table exists before the first measured batch, as bronze does.
            empty.transform(
                transforms.kafka_to_checked, TRANSACTIONS, epoch=1, receipt_secret=SECRET
            ).transform(transforms.to_bronze).write.format("delta").partitionBy("ingest_date").save(
                table
            )
        walls: dict[str, list[float]] = {v: [] for v in variants}
        for batch_id in range(args.warmup + args.batches):
            for variant in variants:
                began = time.perf_counter()
                one_batch(source, variant, tables[variant], batch_id)
                if batch_id >= args.warmup:
                    walls[variant].append(time.perf_counter() - began)
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{args.rows} rows per batch, {args.batches} batches per variant after {args.warmup}, "
        f"{os.cpu_count()} CPUs, extra conf {extra_conf}"
    )
    control = "old" if "old" in walls else variants[0]
    base = statistics.median(walls[control])
    print(f"{'variant':12} {'median s':>9} {'p90 s':>7} {'x ' + control:>12}")
    for variant, times in walls.items():
        p90 = statistics.quantiles(times, n=10)[-1]
        median = statistics.median(times)
        print(f"{variant:12} {median:9.3f} {p90:7.3f} {median / base:12.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.exit(main())
