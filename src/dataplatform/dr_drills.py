"""PostgreSQL and Delta disaster-recovery drills: restore, verify, measure RPO and RTO.

Unlike the Kafka drill (`dataplatform.drills`), these destroy nothing the platform uses, so
they may run on a live platform: the PostgreSQL drill restores into new databases and drops
them, the Delta drill damages and restores a table of its own under a drill prefix of the lake.
Both run the runbooks' commands as an operator types them (`dataplatform backup ...`,
`dataplatform lake ...`) and check the result by content, not by exit codes:

- `postgres_drill` writes marker rows, takes `dataplatform backup postgres` of the ingest and
  Airflow metadata databases, writes more marker rows (the work an incident would lose), then
  restores every database with `dataplatform backup restore` (row counts and per-table
  checksums against the backup's snapshot) and checks the restored marker rows one by one.
  **RPO**: the time from the backup's snapshot to the loss and the marker rows written in it,
  which the restore lacks; **RTO**: from the loss until every database is restored, verified
  and answering queries.
- `delta_drill` writes a table in versions, damages it (a bad overwrite, then a bad append),
  finds the last good version with `lake history`, reads it back by time travel (`lake count
  --version` and the version's rows), restores it with `lake restore` and compares the
  restored rows with the good version's original content (count and SHA-256 of the rows).
  **RTO**: from the start of recovery until the restored table is verified.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg import sql

from dataplatform.drills import DrillError, DrillSteps, run_cli
from dataplatform.settings import PostgresSettings

#: The table the Delta drill damages and restores, inside its own lake prefix.
DELTA_DRILL_TABLE = "silver/finance/transactions"
#: The platform's backup schedule (`platform_backup` DAG, daily): the RPO of a real loss.
BACKUP_INTERVAL = timedelta(days=1)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class RestoredDatabase:
    """One database the drill restored: the backup's figures it was verified against."""

    database: str
    restored_as: str
    tables: int
    rows: int
    checksums: int


@dataclass
class PostgresDrillReport(DrillSteps):
    """The figures of one PostgreSQL drill."""

    backup_uri: str = ""
    marks_before_backup: int = 0
    marks_after_backup: int = 0
    marks_restored: int = 0
    rpo_window_s: float = 0.0
    rto_s: float = 0.0
    restored: list[RestoredDatabase] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as text lines."""
        return [
            *super().lines(),
            f"backup: {self.backup_uri}",
            *(
                f"restored {r.database} as {r.restored_as}: {r.tables} tables, {r.rows} rows; "
                f"row counts and {r.checksums} table checksums equal to the backup's snapshot"
                for r in self.restored
            ),
            f"marker rows written before the backup: {self.marks_before_backup}, all restored "
            f"({self.marks_restored}, content equal)",
            f"RPO: {self.rpo_window_s:.1f} s between the backup's snapshot and the loss; the "
            f"{self.marks_after_backup} marker rows written in it are not in the restore "
            f"(with the daily platform_backup DAG: up to {BACKUP_INTERVAL.total_seconds():.0f} s)",
            f"RTO: {self.rto_s:.1f} s from the loss until every database is restored, "
            "verified and answering",
        ]


def _marks_query(schema: str) -> sql.Composed:
    return sql.SQL("SELECT id, note FROM {}.marks ORDER BY id").format(sql.Identifier(schema))


def _write_marks(conninfo: str, schema: str, first: int, count: int, note: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.marks SELECT g, %s || g FROM generate_series(%s::int, %s::int) g"
            ).format(sql.Identifier(schema)),
            (note, first, first + count - 1),
        )


def postgres_drill(
    *, marks: int = 100, backup_date: date | None = None, keep: bool = False
) -> PostgresDrillReport:
    """Back up the ingest and Airflow databases, restore them into new ones, verify, measure.

    Args:
        marks: Marker rows written before the backup and, again, after it.
        backup_date: The backup folder's day (default today, UTC: the drill's backup is then
            today's backup, a complete and verified one).
        keep: Keep the restored databases (`<run>_<db>`) instead of dropping them.

    Raises:
        DrillError: A step failed or a check did not hold.
    """
    from dataplatform.backup import read_manifest
    from dataplatform.native.services import PLATFORM_DATABASES
    from dataplatform.settings import get_postgres_settings, get_s3_settings

    postgres = get_postgres_settings()
    databases = [postgres.db, *PLATFORM_DATABASES]
    run = f"drill_{uuid.uuid4().hex[:8]}"
    report = PostgresDrillReport()
    day = (backup_date or datetime.now(UTC).date()).isoformat()
    live = postgres.conninfo()
    with psycopg.connect(live, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(run)))
        conn.execute(
            sql.SQL("CREATE TABLE {}.marks (id int PRIMARY KEY, note text NOT NULL)").format(
                sql.Identifier(run)
            )
        )
    restored_names: list[str] = []
    try:
        report.run(
            f"write {marks} marker rows",
            lambda: _write_marks(live, run, 1, marks, "before backup "),
        )
        report.marks_before_backup = marks
        args = ["backup", "postgres", "--date", day]
        for database in databases:
            args += ["--database", database]
        uri = report.run("dataplatform backup postgres", lambda: run_cli(*args).strip())
        report.backup_uri = uri.splitlines()[-1]
        manifest = read_manifest(report.backup_uri, get_s3_settings())
        snapshot = next(d for d in manifest.dumps if d.database == postgres.db).snapshot_at
        report.run(
            f"write {marks} more marker rows (after the backup)",
            lambda: _write_marks(live, run, marks + 1, marks, "after backup "),
        )
        report.marks_after_backup = marks

        # The loss: from here on, only the backup counts.
        lost_at = time.monotonic()
        report.rpo_window_s = (datetime.now(UTC) - datetime.fromisoformat(snapshot)).total_seconds()
        for dump in manifest.dumps:
            target = f"{run}_{dump.database}"
            restored_names.append(target)
            report.run(
                f"dataplatform backup restore <uri> --database {dump.database}",
                functools.partial(
                    run_cli,
                    "backup",
                    "restore",
                    report.backup_uri,
                    "--database",
                    dump.database,
                    "--into",
                    target,
                ),
            )
            report.restored.append(
                RestoredDatabase(
                    database=dump.database,
                    restored_as=target,
                    tables=len(dump.row_counts),
                    rows=sum(dump.row_counts.values()),
                    checksums=len(dump.checksums),
                )
            )
        report.marks_restored = report.run(
            "restored databases answer; marker rows checked",
            lambda: _check_restored(postgres, run, marks),
        )
        report.rto_s = time.monotonic() - lost_at
    finally:
        with psycopg.connect(live, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(run)))
        if not keep:
            from dataplatform.backup import drop_database

            for name in restored_names:
                drop_database(postgres, name)
    return report


def _check_restored(postgres: PostgresSettings, run: str, marks: int) -> int:
    """The restored ingest database holds exactly the marker rows of the snapshot; the
    restored Airflow database is at the live one's schema revision (Airflow can use it)."""
    from dataplatform.native.services import PLATFORM_DATABASES

    with psycopg.connect(postgres.conninfo(dbname=f"{run}_{postgres.db}")) as conn:
        rows = conn.execute(_marks_query(run)).fetchall()
    expected = [(i, f"before backup {i}") for i in range(1, marks + 1)]
    if rows != expected:
        after = sum(1 for _, note in rows if note.startswith("after backup"))
        raise DrillError(
            f"the restored {postgres.db} holds {len(rows)} marker rows ({after} written after "
            f"the backup), expected exactly the {marks} written before it"
        )
    for database in PLATFORM_DATABASES:
        revisions = []
        for name in (database, f"{run}_{database}"):
            with psycopg.connect(postgres.conninfo(dbname=name)) as conn:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revisions.append(row[0] if row else None)
        if revisions[0] != revisions[1] or revisions[1] is None:
            raise DrillError(
                f"the restored {database} is at schema revision {revisions[1]}, the live one "
                f"at {revisions[0]}"
            )
    return len(rows)


# --------------------------------------------------------------------------- Delta


@dataclass(frozen=True)
class Fingerprint:
    """What a table version holds: its row count and the SHA-256 of its rows, in key order."""

    rows: int
    sha256: str


def fingerprint(records: list[dict[str, Any]], key: str) -> Fingerprint:
    """The fingerprint of rows, independent of their order and of file layout.

    Args:
        records: The rows, as dicts of plain values (Decimal, datetime, str...).
        key: The column that orders them (unique).
    """
    digest = hashlib.sha256()
    for row in sorted(records, key=lambda r: r[key]):
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return Fingerprint(rows=len(records), sha256=digest.hexdigest())


@dataclass
class DeltaDrillReport(DrillSteps):
    """The figures of one Delta drill."""

    table: str = ""
    good_version: int = 0
    damaged_version: int = 0
    restored_version: int = 0
    good: Fingerprint | None = None
    damaged: Fingerprint | None = None
    rto_s: float = 0.0

    def lines(self) -> list[str]:
        """The report as text lines."""
        good = self.good or Fingerprint(0, "")
        damaged = self.damaged or Fingerprint(0, "")
        return [
            *super().lines(),
            f"table: {self.table}",
            f"last good version {self.good_version}: {good.rows} rows, sha256 {good.sha256[:16]}",
            f"damaged version {self.damaged_version}: {damaged.rows} rows, "
            f"sha256 {damaged.sha256[:16]}",
            f"time travel to version {self.good_version}: rows equal to its original content",
            f"restored as version {self.restored_version}: rows equal to version "
            f"{self.good_version}'s original content (count and sha256)",
            "RPO: 0 (every committed version is kept until vacuum, 168 h at least)",
            f"RTO: {self.rto_s:.1f} s from the start of recovery until the restored table "
            "is verified",
        ]


def _drill_rows(run: str, first: int, count: int, scale: int = 1) -> Any:
    """`count` transaction rows; `scale` multiplies the amounts (the bad run's mistake)."""
    import pyarrow as pa

    at = datetime(2026, 1, 15, 10, tzinfo=UTC)
    ids = range(first, first + count)
    return pa.table(
        {
            "transaction_id": pa.array([f"DRILL-{run}-{i:06d}" for i in ids], pa.string()),
            "account_id": pa.array([f"ACC-{100000 + i % 50}" for i in ids], pa.string()),
            "amount": pa.array(
                [Decimal(f"{10 + i % 900}.{i % 100:02d}") * scale for i in ids],
                pa.decimal128(18, 2),
            ),
            "currency": pa.array(["EUR"] * count, pa.string()),
            "event_time": pa.array(
                [at + timedelta(seconds=i) for i in ids], pa.timestamp("us", tz="UTC")
            ),
        }
    )


def delta_drill(
    *, rows: int = 1000, lake_prefix: str | None = None, keep: bool = False
) -> DeltaDrillReport:
    """Damage a table of the drill's own, recover it by time travel and restore, verify, time.

    Args:
        rows: Rows of each good write (the good version holds twice as many).
        lake_prefix: Lake prefix of the drill's table (default `drills/delta/<run>`).
        keep: Keep the drill's table instead of deleting its prefix.

    Raises:
        DrillError: A step failed or a check did not hold.
    """
    from deltalake import DeltaTable, write_deltalake

    from dataplatform.clients.s3 import delete_prefix
    from dataplatform.lake import Lake
    from dataplatform.lakelock import table_commit_lock
    from dataplatform.settings import get_postgres_settings

    run = uuid.uuid4().hex[:8]
    lake = Lake.load(prefix=lake_prefix or f"drills/delta/{run}")
    uri = lake.uri(DELTA_DRILL_TABLE, scheme="s3")
    options = lake.s3.delta_storage_options()
    postgres = get_postgres_settings()
    report = DeltaDrillReport(table=f"{lake.prefix}/{DELTA_DRILL_TABLE}")
    prefix_args = ("--table", DELTA_DRILL_TABLE, "--lake-prefix", lake.prefix)

    def write(data: Any, mode: Literal["append", "overwrite"]) -> None:
        # Like every writer of the lake: under the table's commit lock.
        with table_commit_lock(postgres, uri):
            write_deltalake(uri, data, mode=mode, storage_options=options)

    def content(version: int | None = None) -> Fingerprint:
        table = DeltaTable(uri, storage_options=options)
        if version is not None:
            table.load_as_version(version)
        return fingerprint(table.to_pyarrow_table().to_pylist(), "transaction_id")

    try:
        report.run(
            f"write version 0 ({rows} rows)", lambda: write(_drill_rows(run, 0, rows), "append")
        )
        report.run(
            f"write version 1 (+{rows} rows, the last good version)",
            lambda: write(_drill_rows(run, rows, rows), "append"),
        )
        report.good_version = 1
        report.good = content()
        report.run(
            "DAMAGE: version 2 overwrites every amount x1000",
            lambda: write(_drill_rows(run, 0, 2 * rows, scale=1000), "overwrite"),
        )
        report.run(
            "DAMAGE: version 3 appends bad rows",
            lambda: write(_drill_rows(run, 2 * rows, rows // 2 or 1, scale=1000), "append"),
        )
        report.damaged_version = 3
        report.damaged = content()
        if report.damaged == report.good:
            raise DrillError("the damage did not change the table: the drill would prove nothing")

        # Recovery, the runbook's steps.
        started = time.monotonic()
        history = report.run(
            "dataplatform lake history --json",
            lambda: json.loads(run_cli("lake", "history", *prefix_args, "--json")),
        )
        operations = {commit["version"]: commit["operation"] for commit in history}
        if operations.get(report.damaged_version) != "WRITE" or len(operations) != 4:
            raise DrillError(f"lake history shows {operations}, expected versions 0..3")
        counted = report.run(
            f"time travel: dataplatform lake count --version {report.good_version}",
            lambda: run_cli("lake", "count", *prefix_args, "--version", str(report.good_version)),
        )
        if f": {report.good.rows} rows at version {report.good_version}" not in counted:
            raise DrillError(f"lake count at version {report.good_version} said {counted!r}")
        travelled = report.run(
            f"time travel: read version {report.good_version}'s rows",
            lambda: content(report.good_version),
        )
        if travelled != report.good:
            raise DrillError(
                f"version {report.good_version} read by time travel differs from what was "
                f"written: {travelled} != {report.good}"
            )
        report.run(
            f"dataplatform lake restore --version {report.good_version}",
            lambda: run_cli("lake", "restore", *prefix_args, "--version", str(report.good_version)),
        )
        restored = report.run("verify the restored table", content)
        report.restored_version = DeltaTable(uri, storage_options=options).version()
        report.rto_s = time.monotonic() - started
        if restored != report.good:
            raise DrillError(
                f"the restored table differs from version {report.good_version}: "
                f"{restored} != {report.good}"
            )
        if report.restored_version != report.damaged_version + 1:
            raise DrillError(
                f"the restore is version {report.restored_version}, expected a new commit "
                f"{report.damaged_version + 1} (history kept)"
            )
    finally:
        if not keep:
            delete_prefix(lake.s3, lake.prefix)
    return report
