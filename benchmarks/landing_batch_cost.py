"""What one landing micro-batch costs, isolated from Kafka and from the rest of the platform.

Runs the landing job's own `BatchWriter` (contract check, bronze append tagged with its batch
id, counts) on Kafka-shaped rows already in memory, appending to a fresh bronze
table under `s3://lakehouse/benchmarks/<run>/` (deleted at the end), and times each batch:
wall time and CPU of the whole process tree (driver JVM and Python workers included).

Variants, each in its own process because they differ in session settings:

* `current`: the landing job as it runs;
* `no-stats`: without Delta's per-file statistics (data skipping needs them);
* `no-codegen`: without Spark's code generation (internal testing flags);
* `no-txn`: the same rows appended without `txnAppId`/`txnVersion`, i.e. without Delta's
  idempotent-write lookup, the floor exactly once is paid against.

Rounds interleave the variants; medians and ratios to `current` are printed.

    .venv/bin/python benchmarks/landing_batch_cost.py --rows 2500 --rounds 3
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import TRANSACTIONS
from dataplatform.samples import transaction
from dataplatform.settings import get_kafka_settings, get_s3_settings

#: Signs the ingest ids landing computes (any value: nothing reads them back here).
SECRET = b"benchmark-receipt-secret"

VARIANTS = ("current", "no-stats", "no-codegen", "no-txn")
CONF: dict[str, dict[str, str]] = {
    "no-stats": {"spark.databricks.delta.stats.collect": "false"},
    "no-codegen": {
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    },
}


def tree_cpu_s(root: int) -> float:
    """utime + stime of `root` and every descendant, in seconds."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        children.setdefault(int(fields[1]), []).append((int(entry.name), ticks))
    total, stack = 0, [root]
    while stack:
        for pid, used in children.get(stack.pop(), []):
            total += used
            stack.append(pid)
    return total / os.sysconf("SC_CLK_TCK")


def measure(variant: str, rows: int, batches: int, warmup: int, prefix: str) -> dict[str, Any]:
    """One variant in this process: returns per-batch wall and CPU seconds."""
    from pyspark.sql import types as T

    from dataplatform.db.progress import ProgressWriter
    from dataplatform.lake import Lake, get_lakehouse_settings
    from dataplatform.settings import ReceiptSettings, get_postgres_settings
    from pyspark_jobs import transforms
    from pyspark_jobs.landing import BatchWriter, CheckpointThread, TopicGuard
    from pyspark_jobs.launch import start_job_session
    from pyspark_jobs.tables import ensure_landing_tables

    spark = start_job_session("landing-batch-cost", extra_conf=CONF.get(variant, {}))
    lake = Lake.load(prefix=prefix)
    ensure_landing_tables(spark, lake, TRANSACTIONS)
    rng = random.Random(7)  # noqa: S311 - reproducible sample data
    now = datetime.now(UTC)
    data = []
    for offset in range(rows):
        record = transaction(rng)
        data.append(
            (
                record["transaction_id"].encode(),
                orjson.dumps(record),
                TRANSACTIONS.topic,
                offset % 3,
                offset,
                now,
                [("ingest_id", str(uuid.uuid4()).encode())],
            )
        )
    header = T.StructType(
        [T.StructField("key", T.StringType()), T.StructField("value", T.BinaryType())]
    )
    schema = T.StructType(
        [
            T.StructField("key", T.BinaryType()),
            T.StructField("value", T.BinaryType()),
            T.StructField("topic", T.StringType()),
            T.StructField("partition", T.IntegerType()),
            T.StructField("offset", T.LongType()),
            T.StructField("timestamp", T.TimestampType()),
            T.StructField("headers", T.ArrayType(header)),
        ]
    )
    # Three partitions, like the platform's topics, cached as Spark's Kafka source would
    # deliver them (the fetch from Kafka is not part of what is measured).
    source = spark.createDataFrame(data, schema).repartition(3).cache()
    source.count()
    # The topic guard is not measured: it checked the topic id a moment ago.
    guard = TopicGuard(
        spark, get_kafka_settings(), TRANSACTIONS, TRANSACTIONS.topic, "", 1e9, lake, epoch=1
    )
    guard._checked_at = time.monotonic()
    checkpoints = CheckpointThread(
        lake.s3.delta_storage_options(), get_lakehouse_settings().bronze_checkpoint_interval
    )
    checkpoints.start()
    # Valid records only: nothing is quarantined, so the progress writer never connects.
    progress = ProgressWriter(get_postgres_settings(), ReceiptSettings().db_schema)
    writer = BatchWriter(lake, TRANSACTIONS, guard, SECRET, progress, checkpoints, query_id="bench")
    writer.started.set()
    bronze_uri = lake.table("bronze", TRANSACTIONS)
    walls, cpus = [], []
    for batch_id in range(warmup + batches):
        began, cpu = time.monotonic(), tree_cpu_s(os.getpid())
        if variant == "no-txn":
            checked = source.transform(
                transforms.kafka_to_checked, TRANSACTIONS, epoch=1, receipt_secret=SECRET
            )
            checked.coalesce(1).transform(transforms.to_bronze).write.format("delta").mode(
                "append"
            ).save(bronze_uri)
        else:
            writer(source, batch_id)
        if batch_id >= warmup:
            walls.append(time.monotonic() - began)
            cpus.append(tree_cpu_s(os.getpid()) - cpu)
    checkpoints.stop()
    spark.stop()
    return {"variant": variant, "rows": rows, "wall_s": walls, "cpu_s": cpus}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2500, help="rows per micro-batch")
    parser.add_argument("--batches", type=int, default=10, help="measured batches per run")
    parser.add_argument("--warmup", type=int, default=4, help="unmeasured batches first")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.only:
        result = measure(args.only, args.rows, args.batches, args.warmup, args.prefix)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    run = uuid.uuid4().hex[:10]
    variants = [v for v in args.variants.split(",") if v]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    print(f"run {run}: {args.rows} rows per batch, {args.batches} batches after {args.warmup}")
    try:
        for round_no in range(args.rounds):
            for variant in variants:
                prefix = f"benchmarks/{run}/{variant}-{round_no}"
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        *("--only", variant, "--prefix", prefix, "--rows", str(args.rows)),
                        *("--batches", str(args.batches), "--warmup", str(args.warmup)),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
                result = json.loads(line.removeprefix("RESULT "))
                runs[variant].append(result)
                print(
                    f"round {round_no} {variant:10} wall median "
                    f"{statistics.median(result['wall_s']):.3f} s, CPU median "
                    f"{statistics.median(result['cpu_s']):.3f} s",
                    flush=True,
                )
    finally:
        deleted = delete_prefix(get_s3_settings(), f"benchmarks/{run}")
        print(f"deleted {deleted} objects under benchmarks/{run}")
    summary = {}
    for variant, results in runs.items():
        wall = statistics.median(statistics.median(r["wall_s"]) for r in results)
        cpu = statistics.median(statistics.median(r["cpu_s"]) for r in results)
        summary[variant] = {"wall_s": wall, "cpu_s": cpu}
    base = summary.get("current")
    print(f"{'variant':12} {'wall s':>8} {'CPU s':>8} {'wall x current':>15}")
    for variant, figures in summary.items():
        ratio = figures["wall_s"] / base["wall_s"] if base else float("nan")
        print(f"{variant:12} {figures['wall_s']:8.3f} {figures['cpu_s']:8.3f} {ratio:15.2f}")
    if args.json:
        args.json.write_text(json.dumps({"run": run, "summary": summary, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.exit(main())
