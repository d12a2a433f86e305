"""Time from the ingestor's 2xx to the row being readable in bronze, at a steady paced rate.

An open-loop paced client posts small NDJSON batches of transactions to the *managed*
ingestor (default http://127.0.0.1:8000, `/v1/transactions/batch`) every `batch/rate`
seconds and records, per record, the wall-clock time its 2xx arrived (the ack). A poller
follows `bronze/finance/transactions` with delta-rs: every `--poll-interval-s` it refreshes the
table; when a new version appears it notes the time (visible_at) and reads only the new
commits' rows (`load_cdf`, bronze has the change feed on), matching them by `record_key`.

    latency = visible_at (poller first saw the commit holding the row) - ack time

The poll interval adds up to one interval (default 0.1 s) to each figure. Bronze's own
`ingested_at` (Kafka timestamp) and `landed_at` split it into the ingestor->Kafka part and
Spark's part. The landing job's heartbeat (`trigger_execution_ms` per micro-batch) is sampled
too, for the job's own batch durations.

The records are valid transactions whose ids start `FT-LATB-<run>-`; they go through the real
topic into the real (development) bronze table, since that is the path being measured.
Nothing is started here; the ingestor and the `landing` service must run
(`dataplatform up --track intermediate`). Bounded by `--duration-s` plus `--settle-s`.

    .venv/bin/python benchmarks/lakehouse_latency.py --rate 1000 --duration-s 120

`--alongside CMD` runs a command again and again from the end of the warm-up until the
sending ends (e.g. `dataplatform lake optimize --table bronze/finance/transactions`) and
reports the latency of the records acknowledged while it ran.
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from deltalake import DeltaTable

from dataplatform.lake import default_heartbeat_path
from dataplatform.settings import get_ingestor_settings, get_s3_settings

ROOT = Path(__file__).resolve().parent.parent
#: Seconds the client keeps an idle connection: below every server keep-alive it may meet.
CLIENT_KEEPALIVE_S = 4.0


def _api_key() -> str:
    key = os.environ.get("INGESTOR_API_KEY")
    if key:
        return key
    for line in (ROOT / ".env").read_text(encoding="utf-8").splitlines():
        if line.startswith("INGESTOR_API_KEY="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise SystemExit("no INGESTOR_API_KEY in the environment or .env: pass --api-key")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _record(run: str, n: int) -> bytes:
    now = time.gmtime()
    return json.dumps(
        {
            "transaction_id": f"FT-LATB-{run}-{n:08d}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
            "account_id": f"ACC-{100000 + n % 900000}",
            "amount": f"{(n % 9973) + 1}.25",
            "currency": "EUR",
            "transaction_type": "payment",
            "merchant_id": "MER-123",
            "category": "groceries",
        },
        separators=(",", ":"),
    ).encode()


class Poller(threading.Thread):
    """Follows bronze and records when each of our record keys first became readable."""

    def __init__(self, uri: str, options: dict[str, str], prefix: str, interval_s: float):
        super().__init__(daemon=True, name="bronze-poller")
        self.table = DeltaTable(uri, storage_options=options)
        self.prefix = prefix
        self.interval_s = interval_s
        self.visible: dict[str, float] = {}
        self.landed: dict[str, tuple[float, float]] = {}  # key -> (ingested_at, landed_at)
        self.commits: list[tuple[int, float, int]] = []  # version, seen_at, our rows
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        last = self.table.version()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.table.update_incremental()
                version = self.table.version()
                if version > last:
                    seen_at = time.time()
                    self._read(last + 1, version, seen_at)
                    last = version
            except Exception as exc:  # keep polling; counted and reported
                self.errors += 1
                print(f"poller: {exc!r}", file=sys.stderr)
            self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def _read(self, first: int, last: int, seen_at: float) -> None:
        reader = self.table.load_cdf(
            starting_version=first,
            ending_version=last,
            columns=["record_key", "ingested_at", "landed_at", "_commit_version"],
        )
        rows = pa.table(reader.read_all())
        keys = rows.column("record_key").to_pylist()
        ingested = rows.column("ingested_at").to_pylist()
        landed = rows.column("landed_at").to_pylist()
        ours = 0
        for key, ing, land in zip(keys, ingested, landed, strict=True):
            if key.startswith(self.prefix) and key not in self.visible:
                self.visible[key] = seen_at
                self.landed[key] = (ing.timestamp(), land.timestamp())
                ours += 1
        self.commits.append((last, seen_at, ours))


class HeartbeatSampler(threading.Thread):
    """Samples the landing job's heartbeat: one trigger duration per micro-batch id."""

    def __init__(self, path: Path, query: str):
        super().__init__(daemon=True, name="heartbeat")
        self.path = path
        self.query = query
        self.batches: dict[int, dict[str, Any]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                beat = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            state = (beat.get("queries") or {}).get(self.query) or {}
            if state.get("batch_id") is not None and state.get("num_input_rows"):
                self.batches[int(state["batch_id"])] = state


class Alongside(threading.Thread):
    """Runs `command` (split as a shell would) again and again from `start_at` until `stop`."""

    def __init__(self, command: str, start_at: float):
        super().__init__(daemon=True)
        self.command = command
        self.start_at = start_at
        self.stop = threading.Event()
        #: (started, ended, exit code) per run, wall-clock seconds.
        self.runs: list[tuple[float, float, int]] = []

    def run(self) -> None:
        self.stop.wait(max(self.start_at - time.time(), 0))
        while not self.stop.is_set():
            started = time.time()
            done = subprocess.run(shlex.split(self.command), capture_output=True, check=False)
            self.runs.append((started, time.time(), done.returncode))

    def covers(self, moment: float) -> bool:
        """Whether a run of the command was going on at `moment`."""
        return any(started <= moment <= ended for started, ended, _ in self.runs)


async def send(
    url: str, key: str, run: str, rate: float, batch: int, duration_s: float
) -> tuple[dict[str, float], dict[str, int], float]:
    """Post `batch` records every `batch/rate` s for `duration_s`; ack time per record key."""
    acks: dict[str, float] = {}
    statuses: dict[str, int] = {}
    limit = asyncio.Semaphore(64)
    headers = {"X-API-Key": key, "Content-Type": "application/x-ndjson"}
    period = batch / rate
    counter = 0
    tasks: set[asyncio.Task[None]] = set()

    # Idle connections are dropped before any server closes them (the ingestor keeps them
    # INGESTOR_KEEPALIVE_S, 75 s; uvicorn's default is 5 s, as is httpx's expiry, so reusing one
    # idle for just under 5 s could race the server's close: a ReadError, docs/API.md).
    limits = httpx.Limits(max_connections=64, keepalive_expiry=CLIENT_KEEPALIVE_S)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=30, limits=limits
    ) as client:

        async def post(first: int) -> None:
            ids = [f"FT-LATB-{run}-{n:08d}" for n in range(first, first + batch)]
            body = b"\n".join(_record(run, n) for n in range(first, first + batch))
            async with limit:
                try:
                    resp = await client.post("/v1/transactions/batch", content=body)
                    code = str(resp.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                    resp = None
            now = time.time()
            statuses[code] = statuses.get(code, 0) + 1
            if resp is not None and resp.status_code < 300:
                for item in resp.json().get("results", []):
                    if item.get("outcome") == "accepted":
                        acks[item["record_key"]] = now
                if not resp.json().get("results"):
                    acks.update(dict.fromkeys(ids, now))

        loop = asyncio.get_running_loop()
        start = loop.time()
        while (elapsed := loop.time() - start) < duration_s:
            target = counter / batch * period
            if target > elapsed:
                await asyncio.sleep(target - elapsed)
            task = asyncio.create_task(post(counter))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            counter += batch
        sent_s = loop.time() - start
        if tasks:
            await asyncio.gather(*tasks)
    return acks, statuses, sent_s


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="ingestor base URL (default from settings)")
    parser.add_argument("--api-key", default=None, help="default INGESTOR_API_KEY (.env)")
    parser.add_argument("--rate", type=float, default=1000.0, help="records/s (default 1000)")
    parser.add_argument("--batch", type=int, default=10, help="records per POST (default 10)")
    parser.add_argument("--duration-s", type=float, default=120.0, help="sending time")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="acks ignored before this")
    parser.add_argument("--settle-s", type=float, default=30.0, help="max wait for stragglers")
    parser.add_argument("--poll-interval-s", type=float, default=0.1)
    parser.add_argument("--lake-prefix", default="", help="folder of the lake (default none)")
    parser.add_argument("--heartbeat", type=Path, default=default_heartbeat_path())
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--alongside", help="command run repeatedly after the warm-up")
    args = parser.parse_args(argv)

    run = uuid.uuid4().hex[:10]
    url = args.url or get_ingestor_settings().base_url
    s3 = get_s3_settings()
    table = "bronze/finance/transactions"
    uri = s3.lake_uri(f"{args.lake_prefix.strip('/')}/{table}" if args.lake_prefix else table)
    poller = Poller(uri, s3.delta_storage_options(), f"FT-LATB-{run}-", args.poll_interval_s)
    beats = HeartbeatSampler(args.heartbeat, "landing-finance-transactions")
    print(
        f"run {run}: {args.rate:.0f} records/s in batches of {args.batch} to {url} "
        f"for {args.duration_s:.0f} s; following {uri}"
    )
    poller.start()
    beats.start()
    began = time.time()
    alongside = Alongside(args.alongside, began + args.warmup_s) if args.alongside else None
    if alongside is not None:
        alongside.start()
    try:
        acks, statuses, sent_s = asyncio.run(
            send(url, args.api_key or _api_key(), run, args.rate, args.batch, args.duration_s)
        )
        if alongside is not None:
            # The run going on finishes (a job killed half-way would leave it half done).
            alongside.stop.set()
            alongside.join()
        deadline = time.monotonic() + args.settle_s
        while time.monotonic() < deadline and not set(acks) <= set(poller.visible):
            time.sleep(0.5)
    finally:
        poller.stop.set()
        beats.stop.set()
        poller.join(timeout=10)
        beats.join(timeout=5)

    counted = {k: t for k, t in acks.items() if t - began >= args.warmup_s}
    lat = [poller.visible[k] - t for k, t in counted.items() if k in poller.visible]
    kafka_part = [poller.landed[k][0] - t for k, t in counted.items() if k in poller.landed]
    spark_part = [poller.landed[k][1] - poller.landed[k][0] for k in counted if k in poller.landed]
    missing = len(counted) - len(lat)
    ours = [c for c in poller.commits if c[2]]
    triggers = [
        float(b["trigger_execution_ms"]) / 1000
        for b in beats.batches.values()
        if b.get("trigger_execution_ms") is not None
    ]
    result = {
        "run": run,
        "rate_target": args.rate,
        "records_acked": len(acks),
        "achieved_rate": len(acks) / sent_s if sent_s else 0.0,
        "duration_s": args.duration_s,
        "statuses": statuses,
        "counted_after_warmup": len(counted),
        "not_visible_in_time": missing,
        "latency_p50_s": _pct(lat, 0.50),
        "latency_p90_s": _pct(lat, 0.90),
        "latency_p99_s": _pct(lat, 0.99),
        "latency_max_s": max(lat) if lat else float("nan"),
        "ack_minus_kafka_ts_p50_s": -_pct(kafka_part, 0.50),
        "ingested_to_landed_p50_s": _pct(spark_part, 0.50),
        "ingested_to_landed_p99_s": _pct(spark_part, 0.99),
        "bronze_commits_with_our_rows": len(ours),
        "rows_per_commit_mean": statistics.mean(c[2] for c in ours) if ours else 0.0,
        "commit_interval_p50_s": statistics.median(b[1] - a[1] for a, b in itertools.pairwise(ours))
        if len(ours) > 1
        else float("nan"),
        "landing_batches_sampled": len(triggers),
        "landing_trigger_p50_s": statistics.median(triggers) if triggers else float("nan"),
        "landing_trigger_p99_s": _pct(triggers, 0.99),
        "poller_errors": poller.errors,
    }
    if alongside is not None:
        during = [
            poller.visible[k] - t
            for k, t in counted.items()
            if k in poller.visible and alongside.covers(t)
        ]
        result |= {
            "alongside_runs": len(alongside.runs),
            "alongside_failed_runs": sum(1 for run in alongside.runs if run[2] != 0),
            "alongside_run_p50_s": statistics.median(b - a for a, b, _ in alongside.runs)
            if alongside.runs
            else float("nan"),
            "records_acked_during_alongside": len(during),
            "latency_during_alongside_p50_s": _pct(during, 0.50),
            "latency_during_alongside_p99_s": _pct(during, 0.99),
        }
    for name, value in result.items():
        print(f"{name:32} {value:.3f}" if isinstance(value, float) else f"{name:32} {value}")
    p50, p99 = result["latency_p50_s"], result["latency_p99_s"]
    print(
        f"target p50 <= 1.5 s: {'met' if p50 <= 1.5 else 'missed'}; "
        f"p99 <= 3 s: {'met' if p99 <= 3 else 'missed'} (stretch 2 s: "
        f"{'met' if p99 <= 2 else 'missed'}); seed SLO < 5 s: {'met' if p99 < 5 else 'missed'}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0 if lat else 1


if __name__ == "__main__":
    sys.exit(main())
