"""Give bronze a closed day of many small files, for timing landing while OPTIMIZE compacts it.

Bronze OPTIMIZE compacts only days before today (`pyspark_jobs.maintenance`), and a freshly
started development lake has only today's. This copies up to `--rows` of bronze's newest rows
into the day before (their `ingest_date`, `ingested_at` and `landed_at` one day earlier, their
`source` set to `bench-seed`), in `--files` appends of one small file each, through delta-rs
under the table's commit lock, as the starter track's exporter writes. Then:

    .venv/bin/python benchmarks/bronze_closed_day.py --files 200
    .venv/bin/python benchmarks/lakehouse_latency.py --rate 1000 --duration-s 300 \\
        --warmup-s 120 --alongside ".venv/bin/dataplatform lake optimize \\
        --table bronze/finance/transactions"

For a development lake only: the copies are rows curation would read like any other.
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from dataplatform.contracts.bronze import BRONZE_PARTITION_COLUMNS
from dataplatform.lake import Lake
from dataplatform.lakelock import table_commit_lock
from dataplatform.settings import get_postgres_settings

DAY = timedelta(days=1)


def main(argv: list[str] | None = None) -> int:
    """Append the copies and print the table's versions before and after."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="bronze/finance/transactions")
    parser.add_argument("--files", type=int, default=200, help="appends of one file each")
    parser.add_argument("--rows", type=int, default=50, help="rows per file")
    args = parser.parse_args(argv)

    lake = Lake.load()
    uri = lake.uri(args.table, scheme="s3")
    options = lake.s3.delta_storage_options()
    table = DeltaTable(uri, storage_options=options)
    newest = table.to_pyarrow_dataset().head(args.rows)
    if newest.num_rows == 0:
        print(f"{args.table} is empty: land something first", file=sys.stderr)
        return 1
    copies = newest.set_column(
        newest.schema.get_field_index("source"),
        "source",
        pa.array(["bench-seed"] * newest.num_rows, pa.string()),
    )
    for column in ("ingest_date", "ingested_at", "landed_at"):
        index = copies.schema.get_field_index(column)
        field = copies.schema.field(index)
        earlier = [value - DAY for value in copies[column].to_pylist()]
        copies = copies.set_column(index, field, pa.array(earlier, field.type))
    before = table.version()
    for _ in range(args.files):
        with table_commit_lock(get_postgres_settings(), uri):
            write_deltalake(
                uri,
                copies,
                mode="append",
                partition_by=list(BRONZE_PARTITION_COLUMNS),
                storage_options=options,
            )
    after = DeltaTable(uri, storage_options=options).version()
    print(f"{args.table}: {args.files} files of {copies.num_rows} rows, versions {before}->{after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
