"""`dataplatform lake ...`: look at and look after the lakehouse's Delta tables.

`history` and `count` read the tables with delta-rs (no JVM, answers in well under a second);
`optimize`, `vacuum` and `restore` run `pyspark_jobs/maintenance.py` on Spark, the engine
that writes the tables. `reset-landing` and `replay` are the recovery tools of the landing
job (see docs/LAKEHOUSE.md). `join-claim-notes` is the curation step joining claim notes to
the curated claims (delta-rs; the `curation` DAG runs it, see docs/DOCUMENTS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dataplatform.settings import get_kafka_settings

lake_app = typer.Typer(
    help="Delta tables of the lakehouse: history, count, optimize, vacuum, restore, recovery.",
    no_args_is_help=True,
)

console = Console()
err = Console(stderr=True)

TableOption = Annotated[
    str,
    typer.Option("--table", help="<layer>/<domain>/<entity>, e.g. silver/finance/transactions"),
]
PrefixOption = Annotated[
    str | None,
    typer.Option(help="Folder in the bucket holding the tables (default LAKEHOUSE_LAKE_PREFIX)"),
]
EntityOption = Annotated[str, typer.Option("--entity", help="<domain>/<entity>")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=code)


def _delta_table(table: str, prefix: str | None) -> Any:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from dataplatform.lake import Lake

    lake = Lake.load(prefix=prefix)
    uri = lake.uri(table, scheme="s3")
    try:
        return DeltaTable(uri, storage_options=lake.s3.delta_storage_options())
    except TableNotFoundError:
        raise _fail(f"no Delta table at {uri}") from None


def _maintenance(args: list[str], prefix: str | None) -> None:
    argv = [sys.executable, "-m", "pyspark_jobs.maintenance"]
    if prefix is not None:
        argv += ["--lake-prefix", prefix]
    result = subprocess.run([*argv, *args], check=False)
    if result.returncode != 0:
        raise typer.Exit(code=result.returncode)


def _when(millis: Any) -> str:
    from datetime import UTC, datetime

    if not isinstance(millis, int):
        return str(millis)
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")


@lake_app.command()
def history(
    table: TableOption,
    limit: Annotated[int, typer.Option(help="Latest N commits")] = 20,
    lake_prefix: PrefixOption = None,
    as_json: JsonOption = False,
) -> None:
    """A table's commits: version, time, operation (read with delta-rs)."""
    commits = _delta_table(table, lake_prefix).history(limit)
    if as_json:
        console.print_json(json.dumps(commits, default=str))
        return
    view = Table(title=table)
    for column in ("version", "timestamp", "operation", "metrics"):
        view.add_column(column)
    for commit in commits:
        metrics = commit.get("operationMetrics") or {}
        view.add_row(
            str(commit.get("version")),
            _when(commit.get("timestamp")),
            str(commit.get("operation")),
            ", ".join(f"{k}={v}" for k, v in sorted(metrics.items()) if k.startswith("num"))[:120],
        )
    console.print(view)


@lake_app.command()
def count(
    table: TableOption,
    version: Annotated[int | None, typer.Option(help="Count at this version")] = None,
    lake_prefix: PrefixOption = None,
) -> None:
    """Rows in a table (its latest version, or `--version`), read with delta-rs."""
    delta = _delta_table(table, lake_prefix)
    if version is not None:
        delta.load_as_version(version)
    rows = delta.count()
    console.print(f"{table}: {rows} rows at version {delta.version()}", highlight=False)


@lake_app.command()
def optimize(
    table: TableOption,
    where: Annotated[str | None, typer.Option(help="Partition predicate")] = None,
    lake_prefix: PrefixOption = None,
) -> None:
    """Compact small files and Z-order by the table's common filters (Spark job)."""
    _maintenance(
        ["optimize", "--table", table, *(["--where", where] if where else [])], lake_prefix
    )


@lake_app.command()
def vacuum(
    table: TableOption,
    retention_hours: Annotated[float, typer.Option(help="History to keep, hours")] = 168,
    force: Annotated[bool, typer.Option(help="Allow a retention below 168 h")] = False,
    lake_prefix: PrefixOption = None,
) -> None:
    """Delete files older versions no longer need; refuses < 168 h without --force."""
    from dataplatform.lake import RetentionGuardError, check_retention

    try:
        check_retention(table, retention_hours, force=force)
    except RetentionGuardError as exc:
        raise _fail(str(exc), code=2) from None
    args = ["vacuum", "--table", table, "--retention-hours", str(retention_hours)]
    _maintenance([*args, *(["--force"] if force else [])], lake_prefix)


@lake_app.command()
def restore(
    table: TableOption,
    version: Annotated[int | None, typer.Option(help="Version to restore")] = None,
    timestamp: Annotated[
        str | None, typer.Option(help="Point in time to restore, e.g. 2026-01-31T12:00:00Z")
    ] = None,
    lake_prefix: PrefixOption = None,
) -> None:
    """Restore a table to an earlier version or time (a new commit; history is kept)."""
    if (version is None) == (timestamp is None):
        raise _fail("give exactly one of --version and --timestamp")
    target = ["--version", str(version)] if version is not None else ["--timestamp", str(timestamp)]
    _maintenance(["restore", "--table", table, *target], lake_prefix)


def _parent_run(text: str) -> Any:
    from dataplatform.lineage import ParentRun

    try:
        return ParentRun.parse(text) if text.strip() else None
    except ValueError as exc:
        raise _fail(str(exc), code=2) from None


@lake_app.command("join-claim-notes")
def join_claim_notes(
    lake_prefix: PrefixOption = None,
    lineage_parent: Annotated[
        str,
        typer.Option(
            help="<namespace>/<job>/<run id> of the run that started this one (Airflow's "
            "lineage_parent_id macro); empty: none"
        ),
    ] = "",
    lineage_root: Annotated[
        str, typer.Option(help="<namespace>/<job>/<run id> of the root run (the DAG run)")
    ] = "",
) -> None:
    """Rebuild silver/insurance/claims_with_notes: curated claims with their notes (delta-rs)."""
    from dataplatform.documents.curation import curate_claim_notes
    from dataplatform.lake import Lake
    from dataplatform.lineage import LineageEmitter
    from dataplatform.settings import get_postgres_settings

    parent, root = _parent_run(lineage_parent), _parent_run(lineage_root)
    lake = Lake.load(prefix=lake_prefix)
    emitter = LineageEmitter.from_settings(lake)
    try:
        rows = curate_claim_notes(
            lake, get_postgres_settings(), emitter=emitter, parent=parent, root=root
        )
    finally:
        emitter.close()
    if rows is None:
        console.print("nothing to join yet: silver claims or silver documents do not exist")
        return
    console.print(f"silver/insurance/claims_with_notes: {rows} claims", highlight=False)


@lake_app.command("reset-landing")
def reset_landing(
    entity: EntityOption,
    lake_prefix: PrefixOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete an entity's landing checkpoint (after a recreated topic; see docs/LAKEHOUSE.md)."""
    from dataplatform.clients.s3 import delete_prefix
    from dataplatform.lake import (
        Lake,
        entity_by_path,
        heartbeat_healthy,
        landing_job_name,
        read_heartbeat,
    )

    try:
        chosen = entity_by_path(entity)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    lake = Lake.load(prefix=lake_prefix)
    beat = read_heartbeat() or {}
    if heartbeat_healthy() and beat.get("lake_prefix", "") == lake.prefix:
        raise _fail(
            "the landing job is running on this lake: stop it first "
            "(`dataplatform supervisorctl stop landing`)"
        )
    checkpoint = lake.checkpoint(landing_job_name(chosen))
    if not checkpoint.startswith(f"s3a://{lake.s3.bucket}/"):
        raise _fail(f"{checkpoint} is not in the lake's bucket: delete it by hand")
    key_prefix = checkpoint.removeprefix(f"s3a://{lake.s3.bucket}/").rstrip("/") + "/"
    if not yes:
        typer.confirm(f"delete the landing checkpoint {checkpoint}?", abort=True)
    deleted = delete_prefix(lake.s3, key_prefix)
    console.print(f"deleted {deleted} objects of {checkpoint}; start the landing job again")


@lake_app.command()
def replay(
    entity: EntityOption,
    stage: Annotated[
        str,
        typer.Option(
            help="Quarantine stage to replay: landing (quarantine/landing/...), curation or "
            "expectation (both in quarantine/curation/...)"
        ),
    ] = "landing",
    since: Annotated[
        str | None, typer.Option(help="Only rows quarantined at or after this ISO time")
    ] = None,
    topic_prefix: Annotated[str, typer.Option(help="Prefix of the topic names (tests)")] = "",
    lake_prefix: PrefixOption = None,
    dry_run: Annotated[bool, typer.Option(help="Only count what would be replayed")] = False,
) -> None:
    """Send quarantined payloads back to their Kafka topic (after fixing the contract or data).

    Records that still fail are quarantined again; records that pass land in bronze with a
    new offset but their original order token (sent in the `source_epoch`/`source_offset`
    headers), so a replayed version keeps its place among the versions of its key, and
    curation's MERGE on the key keeps one row per record.
    """
    from datetime import datetime

    import pyarrow.compute as pc
    from confluent_kafka import Producer

    from dataplatform.clients.kafka import producer_config
    from dataplatform.contracts.bronze import HEADER_SOURCE_EPOCH, HEADER_SOURCE_OFFSET
    from dataplatform.lake import QUARANTINE_TABLE_OF_STAGE, entity_by_path, quarantine_path

    try:
        chosen = entity_by_path(entity)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if stage not in QUARANTINE_TABLE_OF_STAGE:
        raise _fail(f"unknown stage {stage!r}: one of {', '.join(QUARANTINE_TABLE_OF_STAGE)}")
    table = _delta_table(quarantine_path(chosen, QUARANTINE_TABLE_OF_STAGE[stage]), lake_prefix)
    columns = [
        "quarantine_id",
        "ingest_id",
        "record_key",
        "payload",
        "quarantined_at",
        "source_epoch",
        "source_offset",
    ]
    found = table.to_pyarrow_table(columns=columns, filters=[("stage", "=", stage)])
    if since:
        cutoff = datetime.fromisoformat(since)
        found = found.filter(pc.greater_equal(found["quarantined_at"], cutoff))
    rows = found.to_pylist()
    replayable = [
        row for row in rows if row["payload"] and not row["payload"].startswith("base64:")
    ]
    if dry_run:
        console.print(f"{len(replayable)} of {len(rows)} quarantined rows can be replayed")
        return
    topic = f"{topic_prefix}{chosen.topic}"
    producer = Producer(producer_config(get_kafka_settings()))
    for row in replayable:
        headers = [
            ("ingest_id", (row["ingest_id"] or row["quarantine_id"]).encode()),
            ("replay-of", row["quarantine_id"].encode()),
            ("content-type", b"application/json"),
        ]
        if row["source_epoch"] is not None and row["source_offset"] is not None:
            headers += [
                (HEADER_SOURCE_EPOCH, str(row["source_epoch"]).encode()),
                (HEADER_SOURCE_OFFSET, str(row["source_offset"]).encode()),
            ]
        producer.produce(
            topic,
            key=row["record_key"].encode() if row["record_key"] else None,
            value=row["payload"].encode("utf-8"),
            headers=headers,
        )
        producer.poll(0)
    left = producer.flush(30)
    if left:
        raise _fail(f"{left} replayed records were not acknowledged by Kafka; run replay again")
    console.print(f"replayed {len(replayable)} records to {topic}")
