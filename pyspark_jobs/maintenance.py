"""Table maintenance on Spark: OPTIMIZE (+ Z-order), VACUUM with a retention guard, history,
RESTORE.

    spark-submit pyspark_jobs/maintenance.py optimize --table silver/finance/transactions
    spark-submit pyspark_jobs/maintenance.py vacuum --table bronze/finance/transactions \
        --retention-hours 168
    spark-submit pyspark_jobs/maintenance.py history --table silver/finance/transactions
    spark-submit pyspark_jobs/maintenance.py restore --table silver/finance/transactions \
        --version 3

`dataplatform lake optimize|vacuum|restore` run these; `dataplatform lake history|count` read
the tables with delta-rs and need no JVM. Every command prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from dataplatform.lake import MIN_RETENTION_HOURS, Lake, RetentionGuardError, check_retention
from dataplatform.products import ZORDER_COLUMNS
from dataplatform.shutdown import exit_now
from pyspark_jobs.launch import start_job_session

logger = logging.getLogger("pyspark_jobs.maintenance")


#: Bronze OPTIMIZE without `--where` compacts only closed `ingest_date` partitions (before
#: today, UTC): landing appends to today's every second, and rewriting its files again and
#: again would only compete with landing for the table's commit lock and for S3.
CLOSED_BRONZE_PARTITIONS = "ingest_date < current_date()"


def default_optimize_where(table: str, where: str | None) -> str | None:
    """The partition predicate OPTIMIZE uses: `where` if given, closed days for bronze.

    Args:
        table: `<layer>/<domain>/<entity>`.
        where: The operator's predicate, if any (it wins, e.g. to compact today on purpose).

    Returns:
        The predicate, or None for the whole table.
    """
    if where:
        return where
    return CLOSED_BRONZE_PARTITIONS if table.startswith("bronze/") else None


def optimize(
    spark: SparkSession, lake: Lake, table: str, *, where: str | None = None
) -> dict[str, Any]:
    """Compact small files (streaming writes many) and Z-order by the table's common filters.

    Args:
        spark: The session.
        lake: Where the table is.
        table: `<layer>/<domain>/<entity>`.
        where: Optional partition predicate (e.g. `ingest_date >= '2024-01-01'`); bronze
            defaults to its closed partitions (`default_optimize_where`).

    Returns:
        The table, the predicate, the Z-order columns and Delta's OPTIMIZE metrics.
    """
    builder = DeltaTable.forPath(spark, lake.uri(table)).optimize()
    where = default_optimize_where(table, where)
    if where:
        builder = builder.where(where)
    columns = ZORDER_COLUMNS.get(table, ())
    metrics = builder.executeZOrderBy(*columns) if columns else builder.executeCompaction()
    row = metrics.select("metrics.*").first()
    stats = row.asDict(recursive=True) if row else {}
    return {
        "table": table,
        "where": where,
        "zorder_by": list(columns),
        "files_added": stats.get("numFilesAdded"),
        "files_removed": stats.get("numFilesRemoved"),
    }


def vacuum(
    spark: SparkSession, lake: Lake, table: str, *, retention_hours: float, force: bool = False
) -> dict[str, Any]:
    """Delete files no version within `retention_hours` needs.

    Raises:
        RetentionGuardError: See `check_retention`.
    """
    check_retention(table, retention_hours, force=force)
    if retention_hours < MIN_RETENTION_HOURS:
        # Delta has its own guard; the operator has explicitly overridden ours.
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    DeltaTable.forPath(spark, lake.uri(table)).vacuum(retention_hours)
    return {"table": table, "retention_hours": retention_hours, "forced": force}


def history(spark: SparkSession, lake: Lake, table: str, *, limit: int = 20) -> dict[str, Any]:
    """The latest `limit` commits: version, time, operation, parameters and metrics."""
    rows = (
        DeltaTable.forPath(spark, lake.uri(table))
        .history(limit)
        .select("version", "timestamp", "operation", "operationParameters", "operationMetrics")
        .collect()
    )
    return {"table": table, "history": [row.asDict(recursive=True) for row in rows]}


def restore(
    spark: SparkSession,
    lake: Lake,
    table: str,
    *,
    version: int | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """Restore a table to an earlier version or point in time (a new commit; history stays).

    Raises:
        ValueError: Neither or both of `version` and `timestamp` were given.
    """
    if (version is None) == (timestamp is None):
        raise ValueError("give exactly one of --version and --timestamp")
    target = DeltaTable.forPath(spark, lake.uri(table))
    if version is not None:
        metrics = target.restoreToVersion(version)
    else:
        metrics = target.restoreToTimestamp(str(timestamp))
    row = metrics.first()
    return {
        "table": table,
        "restored_to": {"version": version} if version is not None else {"timestamp": timestamp},
        "metrics": row.asDict() if row else {},
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The maintenance job's command line."""
    parser = argparse.ArgumentParser(prog="maintenance", description="Delta table maintenance.")
    parser.add_argument("--lake-prefix", help="folder in the bucket holding the tables")
    commands = parser.add_subparsers(dest="command", required=True)
    table_help = "<layer>/<domain>/<entity>, e.g. silver/finance/transactions"

    optimize_cmd = commands.add_parser("optimize", help="compact and Z-order")
    optimize_cmd.add_argument("--table", required=True, help=table_help)
    optimize_cmd.add_argument("--where", help="partition predicate")

    vacuum_cmd = commands.add_parser("vacuum", help="delete unreferenced files")
    vacuum_cmd.add_argument("--table", required=True, help=table_help)
    vacuum_cmd.add_argument("--retention-hours", type=float, default=MIN_RETENTION_HOURS)
    vacuum_cmd.add_argument("--force", action="store_true", help=f"allow < {MIN_RETENTION_HOURS} h")

    history_cmd = commands.add_parser("history", help="commit history")
    history_cmd.add_argument("--table", required=True, help=table_help)
    history_cmd.add_argument("--limit", type=int, default=20)

    restore_cmd = commands.add_parser("restore", help="restore a version or timestamp")
    restore_cmd.add_argument("--table", required=True, help=table_help)
    target = restore_cmd.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", type=int)
    target.add_argument("--timestamp", help="e.g. 2026-01-31T12:00:00Z")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `spark-submit pyspark_jobs/maintenance.py <command> ...`.

    Returns:
        0 on success, 2 when the retention guard refused, 1 on any other error.
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "vacuum":
            # Before starting a JVM: a refused vacuum should answer at once.
            check_retention(args.table, args.retention_hours, force=args.force)
        spark = start_job_session(f"maintenance-{args.command}", batch=True)
        lake = Lake.load(prefix=args.lake_prefix)
        if args.command == "optimize":
            output = optimize(spark, lake, args.table, where=args.where)
        elif args.command == "vacuum":
            output = vacuum(
                spark, lake, args.table, retention_hours=args.retention_hours, force=args.force
            )
        elif args.command == "history":
            output = history(spark, lake, args.table, limit=args.limit)
        else:
            output = restore(
                spark, lake, args.table, version=args.version, timestamp=args.timestamp
            )
    except RetentionGuardError as exc:
        logger.error("%s", exc)
        return 2
    except Exception:
        logger.exception("maintenance %s failed", args.command)
        return 1
    sys.stdout.write(json.dumps(output, default=str) + "\n")
    return 0


if __name__ == "__main__":
    exit_now(main())
