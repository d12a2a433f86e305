"""Curation wall time, process start to exit: a run with N new rows per entity, and a no-op run.

For each checkout given with `--checkout` (a folder holding `pyspark_jobs/` and a `.venv`, e.g.
this worktree and a checkout of main as the control), the tool curates a lake prefix of its
own under `s3://lakehouse/benchmarks/curation-<id>/<n>/`:

1. a priming run creates the tables (untimed);
2. each round appends `--rows` new records per entity to bronze with delta-rs (one commit per
   entity, as a landing micro-batch does), then times `python -m pyspark_jobs.curation
   --lake-prefix ... --run-id ...` (every entity, one process) from start to exit, then times
   the same command again with nothing new (the no-op run).

Rounds alternate between the checkouts (round-robin), so a load change hits every checkout
alike. Medians per checkout are printed with the per-round figures, the load average before
and after, and the silver row counts (checked: every appended row reached silver). The
prefixes are deleted at the end.

    .venv/bin/python benchmarks/curation_wall.py --checkout /work/main --checkout . --rounds 3
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
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from dataplatform import samples
from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import ENTITIES, Entity
from dataplatform.contracts.bronze import BRONZE_PARTITION_COLUMNS, kafka_bronze_rows
from dataplatform.exporter import bronze_arrow_schema
from dataplatform.settings import get_s3_settings

_FACTORIES = {"transactions": samples.transaction, "claims": samples.claim}


def _append_bronze(prefix: str, entity: Entity, rows: int, rng: random.Random) -> None:
    """One delta-rs commit of `rows` new records to the prefix's bronze table."""
    s3 = get_s3_settings()
    records = [_FACTORIES[entity.name](rng) for _ in range(rows)]
    batch = kafka_bronze_rows(
        records, key_field=entity.key_field, topic=entity.topic, at=datetime.now(UTC)
    )
    write_deltalake(
        s3.lake_uri(f"{prefix}/{entity.table_path('bronze')}"),
        pa.Table.from_pylist(batch, schema=bronze_arrow_schema()),
        mode="append",
        partition_by=list(BRONZE_PARTITION_COLUMNS),
        storage_options=s3.delta_storage_options(),
    )


def _silver_rows(prefix: str, entity: Entity) -> int:
    s3 = get_s3_settings()
    table = DeltaTable(
        s3.lake_uri(f"{prefix}/{entity.table_path('silver')}"),
        storage_options=s3.delta_storage_options(),
    )
    return int(table.to_pyarrow_table(columns=[entity.key_field]).num_rows)


def _curate(checkout: Path, prefix: str, run_id: str, log: Path, java_options: str) -> float:
    """Run the checkout's curation job over every entity; seconds from start to exit.

    `java_options` go to the driver JVM through `SPARK_SUBMIT_OPTS` (Spark's launcher adds them
    to the `java` command line of a `pyspark` session's JVM)."""
    command = [
        str(checkout / ".venv" / "bin" / "python"),
        "-m",
        "pyspark_jobs.curation",
        "--lake-prefix",
        prefix,
        "--run-id",
        run_id,
    ]
    started = time.monotonic()
    with log.open("a") as out:
        code = subprocess.run(
            command,
            cwd=checkout,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            env={**os.environ, "SPARK_SUBMIT_OPTS": java_options} if java_options else None,
        ).returncode
    seconds = time.monotonic() - started
    if code != 0:
        sys.exit(f"curation in {checkout} exited {code}: see {log}")
    return seconds


def main() -> None:
    """Parse arguments, run the rounds, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", required=True)
    parser.add_argument(
        "--java-options",
        action="append",
        metavar="LABEL=OPTIONS",
        help="a variant run in every checkout with these driver JVM options (repeatable; "
        "`plain=` is the variant without any); default: one variant without any",
    )
    parser.add_argument("--rows", type=int, default=100, help="new rows per entity per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    rng = random.Random(run)  # noqa: S311 (test data, not secrets)
    variants = dict(v.split("=", 1) for v in args.java_options or ["plain="])
    units = [(path.resolve(), label) for path in args.checkout for label in variants]
    names = {unit: f"{unit[0]}[{unit[1]}]" for unit in units}
    prefixes = {unit: f"benchmarks/curation-{run}/{n}" for n, unit in enumerate(units)}
    logs = {unit: args.log_dir / f"curation-wall-{run}-{n}.log" for n, unit in enumerate(units)}
    results: dict[tuple[Path, str], dict[str, list[float]]] = {
        unit: {"new": [], "noop": []} for unit in units
    }
    load_before = os.getloadavg()
    try:
        for unit in units:
            _curate(unit[0], prefixes[unit], f"prime-{run}", logs[unit], variants[unit[1]])
        for round_no in range(args.rounds):
            for unit in units:
                checkout, opts = unit[0], variants[unit[1]]
                for entity in ENTITIES:
                    _append_bronze(prefixes[unit], entity, args.rows, rng)
                new = _curate(checkout, prefixes[unit], f"r{round_no}-{run}", logs[unit], opts)
                noop = _curate(checkout, prefixes[unit], f"n{round_no}-{run}", logs[unit], opts)
                results[unit]["new"].append(new)
                results[unit]["noop"].append(noop)
                print(f"round {round_no} {names[unit]}: new {new:.1f} s, no-op {noop:.1f} s")
        silver = {
            names[unit]: {f"{e.domain}/{e.name}": _silver_rows(prefixes[unit], e) for e in ENTITIES}
            for unit in units
        }
        expected = args.rows * args.rounds
        report: dict[str, Any] = {
            "rows_per_entity_per_round": args.rows,
            "rounds": args.rounds,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "silver_rows": silver,
            "every_row_in_silver": all(
                count == expected for counts in silver.values() for count in counts.values()
            ),
            "median_s": {
                names[unit]: {k: round(statistics.median(v), 1) for k, v in runs.items()}
                for unit, runs in results.items()
            },
            "rounds_s": {
                names[unit]: {k: [round(x, 1) for x in v] for k, v in runs.items()}
                for unit, runs in results.items()
            },
        }
        print(json.dumps(report, indent=2))
    finally:
        delete_prefix(get_s3_settings(), f"benchmarks/curation-{run}")


if __name__ == "__main__":
    main()
