"""Curation MERGE: N new bronze rows into an M-row silver table, Spark `local[2]` vs delta-rs.

Builds, once, a silver table of `--target-rows` rows with the real
`silver/finance/transactions` schema (`pyspark_jobs.transforms.silver_schema`) and a source of
`--source-rows` parsed rows (half updates of existing keys with a later event time, half new
keys), both Delta tables written with delta-rs on **local disk** (`--workdir`, default a
temporary folder, deleted at the end) or under `s3://lakehouse/benchmarks/<run>/`
(`--storage s3`, deleted at the end).

Each round copies the pristine silver table and times one MERGE only, with the curation job's
semantics (`pyspark_jobs.curation._merge_silver`): match on `transaction_id`, update when the
incoming row is newer (`transforms.newer_than`), insert the rest:

* Spark: `DeltaTable.forPath(...).merge(...).execute()` in a session built by the jobs' own
  `start_job_session` (master from `SPARK_MASTER`, `local[2]`), after `--warmup` untimed
  MERGEs; the source is read from its Delta table inside the timed section;
* delta-rs: `deltalake.DeltaTable.merge(...)` with the same predicates, the floor.

Rounds alternate (delta-rs, Spark) and medians are printed, with the per-round figures.

    .venv/bin/python benchmarks/lakehouse_merge.py --rounds 3
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from dataplatform.clients.s3 import delete_prefix, s3_client
from dataplatform.settings import get_s3_settings

KEY = "transaction_id"


def _arrow_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("transaction_id", pa.string(), nullable=False),
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("amount", pa.decimal128(18, 6), nullable=False),
            pa.field("currency", pa.string(), nullable=False),
            pa.field("transaction_type", pa.string(), nullable=False),
            pa.field("merchant_id", pa.string()),
            pa.field("category", pa.string()),
            pa.field("event_date", pa.date32(), nullable=False),
            pa.field("ingest_id", pa.string(), nullable=False),
            pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("kafka_topic", pa.string()),
            pa.field("kafka_partition", pa.int32()),
            pa.field("kafka_offset", pa.int64()),
            pa.field("bronze_version", pa.int64(), nullable=False),
            pa.field("curation_run_id", pa.string(), nullable=False),
            pa.field("curated_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("currency_minor_units", pa.int32()),
            pa.field("reporting_currency", pa.string(), nullable=False),
            pa.field("fx_rate", pa.decimal128(20, 10)),
            pa.field("amount_reporting", pa.decimal128(24, 6)),
        ]
    )


def make_rows(keys: list[int], *, base: datetime, version: int, seed: int) -> pa.Table:
    """Silver-shaped rows for the given key numbers."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data
    n = len(keys)
    currencies = ("USD", "EUR", "GBP", "CHF")
    stamps = [base + timedelta(seconds=rng.randint(0, 86_400 * 30)) for _ in range(n)]
    cents = [rng.randint(100, 1_000_000) for _ in range(n)]
    data: dict[str, Any] = {
        "transaction_id": [f"FT-MB-{k:09d}" for k in keys],
        "timestamp": stamps,
        "account_id": [f"ACC-{rng.randint(100000, 999999)}" for _ in range(n)],
        "amount": [Decimal(c).scaleb(-2) for c in cents],
        "currency": [currencies[k % 4] for k in keys],
        "transaction_type": ["payment"] * n,
        "merchant_id": [f"MER-{k % 900 + 100}" for k in keys],
        "category": ["groceries"] * n,
        "event_date": [s.date() for s in stamps],
        "ingest_id": [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(n)],
        "ingested_at": [s + timedelta(seconds=1) for s in stamps],
        "source": ["kafka"] * n,
        "kafka_topic": ["finance.transactions.v1"] * n,
        "kafka_partition": [k % 3 for k in keys],
        "kafka_offset": keys,
        "bronze_version": [version] * n,
        "curation_run_id": [f"bench-{version}"] * n,
        "curated_at": [base] * n,
        "currency_minor_units": [2] * n,
        "reporting_currency": ["EUR"] * n,
        "fx_rate": [Decimal("1.0000000000")] * n,
        "amount_reporting": [Decimal(c).scaleb(-2) for c in cents],
    }
    return pa.table(data, schema=_arrow_schema())


def newer_than(source: str = "s", target: str = "t") -> str:
    """The curation job's recency condition (same text as `transforms.newer_than`)."""
    return (
        f"({source}.timestamp > {target}.timestamp) OR "
        f"({source}.timestamp = {target}.timestamp AND {source}.ingested_at > "
        f"{target}.ingested_at) OR ({source}.timestamp = {target}.timestamp AND "
        f"{source}.ingested_at = {target}.ingested_at AND {source}.ingest_id > "
        f"{target}.ingest_id)"
    )


class Store:
    """Local folder or S3 prefix holding the benchmark tables."""

    def __init__(self, storage: str, workdir: Path | None, run: str) -> None:
        self.storage = storage
        self.run = run
        self.s3 = get_s3_settings()
        self.options = self.s3.delta_storage_options() if storage == "s3" else {}
        self.tmp = None
        if storage == "local":
            self.tmp = Path(tempfile.mkdtemp(prefix=f"lakehouse_merge_{run}_", dir=workdir))
        self.prefix = f"benchmarks/{run}"

    def uri(self, name: str, *, spark: bool = False) -> str:
        if self.tmp is not None:
            return str(self.tmp / name)
        return self.s3.lake_uri(f"{self.prefix}/{name}", scheme="s3a" if spark else "s3")

    def copy(self, src: str, dst: str) -> None:
        if self.tmp is not None:
            shutil.copytree(self.tmp / src, self.tmp / dst)
            return
        client = s3_client(self.s3)
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3.bucket, Prefix=f"{self.prefix}/{src}/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                new = f"{self.prefix}/{dst}/" + key[len(f"{self.prefix}/{src}/") :]
                client.copy_object(
                    Bucket=self.s3.bucket,
                    Key=new,
                    CopySource={"Bucket": self.s3.bucket, "Key": key},
                )

    def cleanup(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        delete_prefix(self.s3, self.prefix)


def merge_delta_rs(store: Store, target: str) -> tuple[float, dict[str, Any]]:
    """One delta-rs MERGE; returns seconds and its metrics."""
    started = time.perf_counter()
    source = DeltaTable(store.uri("source"), storage_options=store.options).to_pyarrow_table()
    metrics = (
        DeltaTable(store.uri(target), storage_options=store.options)
        .merge(source, predicate=f"t.{KEY} = s.{KEY}", source_alias="s", target_alias="t")
        .when_matched_update_all(predicate=newer_than())
        .when_not_matched_insert_all()
        .execute()
    )
    return time.perf_counter() - started, metrics


def merge_spark(spark: Any, store: Store, target: str) -> float:
    """One Spark MERGE (the curation job's shape); returns seconds."""
    from delta.tables import DeltaTable as SparkDeltaTable

    columns = _arrow_schema().names
    assignments = {name: f"s.`{name}`" for name in columns}
    started = time.perf_counter()
    source = spark.read.format("delta").load(store.uri("source", spark=True))
    (
        SparkDeltaTable.forPath(spark, store.uri(target, spark=True))
        .alias("t")
        .merge(source.alias("s"), f"t.`{KEY}` = s.`{KEY}`")
        .whenMatchedUpdate(condition=newer_than(), set=assignments)
        .whenNotMatchedInsert(values=assignments)
        .execute()
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-rows", type=int, default=1_000_000)
    parser.add_argument("--source-rows", type=int, default=100_000)
    parser.add_argument("--update-share", type=float, default=0.5, help="source rows that match")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed Spark MERGEs first")
    parser.add_argument("--storage", choices=("local", "s3"), default="local")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the local tables")
    parser.add_argument("--engines", default="delta-rs,spark", help="comma list")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    engines = set(args.engines.split(","))

    run = uuid.uuid4().hex[:10]
    store = Store(args.storage, args.workdir, run)
    result: dict[str, Any] = {"run": run, "storage": args.storage, "rounds": args.rounds}
    spark = None
    try:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        t = time.perf_counter()
        write_deltalake(
            store.uri("silver"),
            make_rows(list(range(args.target_rows)), base=base, version=1, seed=1),
            storage_options=store.options,
        )
        updates = int(args.source_rows * args.update_share)
        rng = random.Random(2)  # noqa: S311
        keys = rng.sample(range(args.target_rows), updates) + list(
            range(args.target_rows, args.target_rows + args.source_rows - updates)
        )
        # Later event times than every target row, so each matched row is an update.
        write_deltalake(
            store.uri("source"),
            make_rows(keys, base=base + timedelta(days=31), version=2, seed=3),
            storage_options=store.options,
        )
        result["setup_s"] = time.perf_counter() - t
        print(f"run {run}: tables built in {result['setup_s']:.1f} s at {store.uri('')}")
        if "spark" in engines:
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            from pyspark_jobs.launch import start_job_session

            t = time.perf_counter()
            spark = start_job_session("bench-merge")
            result["spark_session_s"] = time.perf_counter() - t
            result["spark_master"] = spark.sparkContext.master
            for i in range(args.warmup):
                store.copy("silver", f"warm{i}")
                print(f"spark warm-up MERGE: {merge_spark(spark, store, f'warm{i}'):.2f} s")
        times: dict[str, list[float]] = {"delta-rs": [], "spark": []}
        for r in range(args.rounds):
            if "delta-rs" in engines:
                store.copy("silver", f"rs{r}")
                seconds, metrics = merge_delta_rs(store, f"rs{r}")
                times["delta-rs"].append(seconds)
                result["delta_rs_metrics"] = {
                    k: metrics.get(k)
                    for k in ("num_source_rows", "num_target_rows_updated",
                              "num_target_rows_inserted", "num_output_rows")
                }  # fmt: skip
                print(f"round {r}: delta-rs {seconds:.2f} s")
            if spark is not None:
                store.copy("silver", f"sp{r}")
                seconds = merge_spark(spark, store, f"sp{r}")
                times["spark"].append(seconds)
                rows = DeltaTable(store.uri(f"sp{r}"), storage_options=store.options).count()
                result["spark_rows_after"] = rows
                print(f"round {r}: spark {seconds:.2f} s ({rows} rows after)")
        for engine, values in times.items():
            if values:
                result[f"{engine}_s"] = values
                result[f"{engine}_median_s"] = statistics.median(values)
        if times["spark"]:
            median = result["spark_median_s"]
            print(f"target Spark MERGE <= 15 s: {'met' if median <= 15 else 'missed'} "
                  f"({median:.2f} s median)")  # fmt: skip
    finally:
        if spark is not None:
            spark.stop()
        store.cleanup()
    for name, value in result.items():
        print(f"{name:24} {value:.3f}" if isinstance(value, float) else f"{name:24} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
