"""Sustained landing throughput: Kafka -> Spark landing -> bronze, with lag and rows per commit.

Isolated from the platform's tables: the run creates its own topic
`lbench<run>.finance.transactions.v1` (3 partitions, like the platform's) and starts its own
landing job on it (`python -m pyspark_jobs.landing --entity finance/transactions
--topic-prefix lbench<run>. --lake-prefix benchmarks/<run>`), writing to
`s3://lakehouse/benchmarks/<run>/...`. The managed `landing` service keeps running (idle),
as under `dataplatform up`. Afterwards the landing job is stopped by its PID, the topic is
deleted and the benchmark prefix is removed from S3 (`--keep` keeps them).

A paced producer (confluent-kafka, idempotent, acks=all, linger 5 ms) writes valid
transactions in the ingestor's format (compact JSON with sorted keys, key = transaction_id,
headers ingest_id / traceparent / content-type) at `--rate` records/s for `--duration-s`.
Every `--sample-s` seconds it samples the lag:

    lag = sum over partitions of (log-end offset - end offset of the last committed landing batch)

where the landed offsets come from the landing checkpoint on S3 (`offsets/<id>` of the
newest `commits/<id>`). After the producer stops it waits (at most `--drain-s`) for the lag to
reach zero. Rows per Delta commit come from the bronze table's history (`numOutputRows`
of each WRITE). Landing's `maxOffsetsPerTrigger` and trigger interval are the settings'
unless `--max-offsets-per-trigger` / `--trigger-interval-s` are given.

    .venv/bin/python benchmarks/lakehouse_throughput.py --rate 10000 --duration-s 180
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

from dataplatform.clients.s3 import delete_prefix, s3_client
from dataplatform.lake import read_heartbeat
from dataplatform.settings import get_kafka_settings, get_s3_settings

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TMP = Path(tempfile.gettempdir())
PARTITIONS = 3
BATCH_LOG = re.compile(r"landed batch \d+ of \S+: \d+ to bronze, \d+ to quarantine in ([\d.]+) s")


def _payload(run: str, n: int, stamp: str) -> bytes:
    # Sorted keys, compact: what the ingestor forwards.
    return (
        f'{{"account_id":"ACC-{100000 + n % 900000:06d}","amount":"{n % 9973 + 1}.25",'
        f'"category":"groceries","currency":"EUR","merchant_id":"MER-123",'
        f'"timestamp":"{stamp}","transaction_id":"FT-TPB-{run}-{n:09d}",'
        f'"transaction_type":"payment"}}'
    ).encode()


def landed_offsets(s3: Any, bucket: str, checkpoint_key: str, topic: str) -> dict[int, int]:
    """End offsets (per partition) of the newest committed batch in a Spark checkpoint."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{checkpoint_key}/commits/"
    )
    ids = [
        int(name)
        for page in pages
        for obj in page.get("Contents", [])
        if (name := obj["Key"].rsplit("/", 1)[-1]).isdigit()
    ]
    if not ids:
        return {}
    body = s3.get_object(Bucket=bucket, Key=f"{checkpoint_key}/offsets/{max(ids)}")["Body"]
    last = body.read().decode().strip().splitlines()[-1]
    return {int(p): int(o) for p, o in json.loads(last).get(topic, {}).items()}


def log_end(consumer: Consumer, topic: str) -> dict[int, int]:
    """High watermarks per partition."""
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(PARTITIONS)
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10_000.0, help="records/s produced")
    parser.add_argument("--duration-s", type=float, default=180.0, help="producing time")
    parser.add_argument("--drain-s", type=float, default=120.0, help="max wait for lag 0")
    parser.add_argument("--sample-s", type=float, default=2.0, help="lag sampling period")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    parser.add_argument("--trigger-interval-s", type=float, default=None)
    parser.add_argument("--startup-s", type=float, default=240.0, help="max wait for landing")
    parser.add_argument("--keep", action="store_true", help="keep topic and S3 prefix")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    run = uuid.uuid4().hex[:10]
    kafka = get_kafka_settings()
    s3_settings = get_s3_settings()
    s3 = s3_client(s3_settings)
    bucket = s3_settings.bucket
    prefix = f"benchmarks/{run}"
    topic = f"lbench{run}.finance.transactions.v1"
    checkpoint_key = f"{prefix}/_checkpoints/landing-finance-transactions"
    bronze_uri = s3_settings.lake_uri(f"{prefix}/bronze/finance/transactions")
    log_path = TMP / f"lakehouse_throughput_{run}.log"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    landing: subprocess.Popen[bytes] | None = None
    samples: list[dict[str, Any]] = []
    batches: dict[int, dict[str, Any]] = {}
    heartbeat_path = TMP / f"lakehouse_throughput_{run}.heartbeat.json"
    result: dict[str, Any] = {"run": run, "topic": topic, "lake_prefix": prefix}
    print(f"run {run}: topic {topic}, tables under s3://{bucket}/{prefix}, log {log_path}")
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
        cmd = [
            str(VENV_BIN / "python"), "-m", "pyspark_jobs.landing",
            "--entity", "finance/transactions",
            "--topic-prefix", f"lbench{run}.",
            "--lake-prefix", prefix,
            "--starting-offsets", "earliest",
            "--heartbeat-path", str(heartbeat_path),
        ]  # fmt: skip
        if args.max_offsets_per_trigger:
            cmd += ["--max-offsets-per-trigger", str(args.max_offsets_per_trigger)]
        if args.trigger_interval_s:
            cmd += ["--trigger-interval-s", str(args.trigger_interval_s)]
        with log_path.open("wb") as log:
            # Its own session: the Spark JVM it launches is in the same process group, so the
            # fallback below can kill the pair by that group id if SIGTERM is not enough.
            landing = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        # Ready when the first (empty) batch is committed to the checkpoint.
        deadline = time.monotonic() + args.startup_s
        producer = Producer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        warm = 0
        while True:
            if landing.poll() is not None:
                raise RuntimeError(f"landing exited: {log_path.read_text()[-3000:]}")
            if landed_offsets(s3, bucket, checkpoint_key, topic):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("landing did not commit a first batch in time")
            if warm == 0:  # something to land, so a first batch is committed
                warm_n = 999_999_999
                producer.produce(
                    topic,
                    _payload(run, warm_n, "2026-01-01T00:00:00Z"),
                    key=f"FT-TPB-{run}-{warm_n:09d}".encode(),
                    headers=[("ingest_id", uuid.uuid4().hex.encode())],
                )
                producer.flush(10)
                warm = 1
            time.sleep(1)
        print("landing is running; producing")
        consumer = Consumer(
            {"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"lbench-{run}"}
        )
        ingest_ids = uuid.uuid4().hex[:20]
        headers_ct = b"application/json"
        sent = 0
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        t0 = time.monotonic()
        next_sample = t0
        chunk = max(1, int(args.rate / 200))  # produce in 5 ms steps
        while (now := time.monotonic()) - t0 < args.duration_s:
            due = int((now - t0) * args.rate)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            while sent < due:
                for n in range(sent, min(due, sent + chunk)):
                    key = f"FT-TPB-{run}-{n:09d}"
                    try:
                        producer.produce(
                            topic,
                            _payload(run, n, stamp),
                            key=key.encode(),
                            headers=[
                                ("ingest_id", f"{ingest_ids}{n:012x}".encode()),
                                ("traceparent", b"00-%032x-%016x-01" % (n + 1, n + 1)),
                                ("content-type", headers_ct),
                            ],
                            on_delivery=on_delivery,
                        )
                    except BufferError:
                        producer.poll(0.05)
                        break
                    sent = n + 1
                producer.poll(0)
            if now >= next_sample:
                ends, done = (
                    log_end(consumer, topic),
                    landed_offsets(s3, bucket, checkpoint_key, topic),
                )
                lag = sum(ends[p] - done.get(p, 0) for p in ends)
                beat = read_heartbeat(heartbeat_path) or {}
                query = (beat.get("queries") or {}).get("landing-finance-transactions") or {}
                if query.get("batch_id") is not None:
                    batches[int(query["batch_id"])] = query
                samples.append({"t": round(now - t0, 1), "lag": lag, "produced": sent})
                print(f"t={now - t0:6.1f}s produced={sent:>9} lag={lag:>8}", flush=True)
                next_sample += args.sample_s
            time.sleep(0.002)
        produce_s = time.monotonic() - t0
        producer.flush(60)
        stop_t = time.monotonic()
        drained_after = None
        while time.monotonic() - stop_t < args.drain_s:
            ends, done = log_end(consumer, topic), landed_offsets(s3, bucket, checkpoint_key, topic)
            lag = sum(ends[p] - done.get(p, 0) for p in ends)
            samples.append({"t": round(time.monotonic() - t0, 1), "lag": lag, "produced": sent})
            if lag == 0:
                drained_after = time.monotonic() - stop_t
                break
            time.sleep(args.sample_s)
        consumer.close()

        history = DeltaTable(bronze_uri, storage_options=s3_settings.delta_storage_options())
        writes = [
            int(c["operationMetrics"]["numOutputRows"])
            for c in history.history()
            if c.get("operation") == "WRITE" and c.get("operationMetrics")
        ]
        landed_rows = sum(writes)
        steady = [s["lag"] for s in samples if s["t"] <= produce_s]
        half = steady[len(steady) // 2 :]
        result |= {
            "rate_target": args.rate,
            "duration_s": args.duration_s,
            "produced": sent,
            "produced_rate": sent / produce_s,
            "delivery_errors": len(errors),
            "landed_rows": landed_rows,
            "landed_rate_over_produce_plus_drain": landed_rows
            / (produce_s + (drained_after if drained_after is not None else args.drain_s)),
            "lag_max": max(steady) if steady else None,
            "lag_median_2nd_half": statistics.median(half) if half else None,
            "lag_end_of_production": steady[-1] if steady else None,
            "lag_growth_per_s_2nd_half": (
                (half[-1] - half[0]) / (len(half) * args.sample_s) if len(half) > 1 else None
            ),
            "drained_after_s": drained_after,
            "delta_writes": len(writes),
            "rows_per_commit_mean": statistics.mean(writes) if writes else 0.0,
            "rows_per_commit_median": statistics.median(writes) if writes else 0.0,
            "landing_batches_sampled": len(batches),
            "landing_batch_rows_median": statistics.median(
                b.get("num_input_rows") or 0 for b in batches.values()
            )
            if batches
            else None,
            "landing_trigger_s_median": statistics.median(
                (b.get("trigger_execution_ms") or 0) / 1000 for b in batches.values()
            )
            if batches
            else None,
            "samples": samples,
        }
    finally:
        if landing is not None and landing.poll() is None:
            landing.send_signal(signal.SIGTERM)
            try:
                landing.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(landing.pid, signal.SIGKILL)
                landing.wait(10)
        if landing is not None:
            log_text = log_path.read_text(errors="replace")
            durations = [float(m) for m in BATCH_LOG.findall(log_text)]
            result["landing_batch_s_median"] = statistics.median(durations) if durations else None
            result["landing_batches_logged"] = len(durations)
        if not args.keep:
            admin.delete_topics([topic])[topic].result(timeout=30)
            result["s3_objects_deleted"] = delete_prefix(s3_settings, prefix)
            heartbeat_path.unlink(missing_ok=True)
    for name, value in result.items():
        if name != "samples":
            print(f"{name:36} {value:.3f}" if isinstance(value, float) else f"{name:36} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.exit(main())
