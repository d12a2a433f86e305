"""`dataplatform backup`: PostgreSQL and Kafka backups to S3, and the restores that prove them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer
from confluent_kafka import KafkaException
from rich.console import Console

from dataplatform import backup
from dataplatform.native.services import PLATFORM_DATABASES
from dataplatform.settings import get_postgres_settings, get_runtime_settings, get_s3_settings

backup_app = typer.Typer(
    help="Backups of the PostgreSQL databases and the Kafka topics to S3, and their restores.",
    no_args_is_help=True,
)
# Progress goes to stderr: stdout carries only the result, for scripts and Airflow's XCom.
err = Console(stderr=True, highlight=False)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


@backup_app.command("postgres")
def backup_postgres(
    backup_date: Annotated[
        str | None,
        typer.Option("--date", help="Day the backup belongs to, YYYY-MM-DD (default: today, UTC)"),
    ] = None,
    databases: Annotated[
        list[str] | None,
        typer.Option("--database", "-d", help="Database to back up (repeatable; default: all)"),
    ] = None,
) -> None:
    """Dump the databases to s3://<bucket>/_backups/postgres/<date>/; print the backup's URI."""
    postgres = get_postgres_settings()
    try:
        day = date.fromisoformat(backup_date) if backup_date else datetime.now(UTC).date()
    except ValueError:
        raise _fail(f"--date must be YYYY-MM-DD, got {backup_date!r}") from None
    chosen = databases or [postgres.db, *PLATFORM_DATABASES]
    try:
        uri = backup.backup_postgres(
            postgres=postgres,
            s3=get_s3_settings(),
            databases=chosen,
            backup_date=day,
            bin_dir=get_runtime_settings().postgres_bin_dir,
        )
    except backup.BackupError as exc:
        raise _fail(str(exc)) from None
    err.print(f"backed up {', '.join(chosen)}")
    # The last line of stdout is the URI: `verify` takes it, and Airflow pushes it to XCom.
    typer.echo(uri)


@backup_app.command("verify")
def verify(
    uri: Annotated[
        str, typer.Argument(help="A backup folder, s3://<bucket>/_backups/postgres/<date>/")
    ],
) -> None:
    """Restore each dump of a backup into a scratch database; compare row counts and checksums."""
    try:
        checks = backup.verify_backup(
            uri,
            postgres=get_postgres_settings(),
            s3=get_s3_settings(),
            bin_dir=get_runtime_settings().postgres_bin_dir,
        )
    except backup.BackupError as exc:
        raise _fail(str(exc)) from None
    for check in checks:
        err.print(
            f"[green]ok[/] {check.database}: {check.tables} tables, {check.rows} rows restored "
            f"into {check.scratch_database} (dropped) match the manifest "
            f"({check.checksums_compared} table checksums equal)"
        )
    typer.echo(f"verified {uri}")


@backup_app.command("restore")
def restore(
    uri: Annotated[
        str, typer.Argument(help="A backup folder, s3://<bucket>/_backups/postgres/<date>/")
    ],
    database: Annotated[
        str, typer.Option("--database", "-d", help="The database of the backup to restore")
    ],
    into: Annotated[
        str | None,
        typer.Option(help="New database to restore into (default <database>_restored_<time>)"),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Then put it in place of <database>, which is kept as <database>_replaced_<time>"
            " (stop the services using it first)",
        ),
    ] = False,
) -> None:
    """Restore one database of a backup into a new database, verified; print its name.

    The new database is kept only if every table matches the backup's row counts and
    checksums. With `--replace` it then takes the name of the damaged database, which is
    renamed aside, not dropped.
    """
    target = into or backup.restored_name(database)
    postgres = get_postgres_settings()
    try:
        check = backup.restore_backup(
            uri,
            database,
            target=target,
            postgres=postgres,
            s3=get_s3_settings(),
            bin_dir=get_runtime_settings().postgres_bin_dir,
        )
    except backup.BackupError as exc:
        raise _fail(str(exc)) from None
    err.print(
        f"[green]ok[/] {database}: {check.tables} tables, {check.rows} rows restored into "
        f"{target}, row counts and {check.checksums_compared} table checksums equal to the backup"
    )
    if replace:
        try:
            aside = backup.replace_database(postgres, database, target)
        except backup.BackupError as exc:
            raise _fail(f"{exc} (the verified restore stays in {target})") from None
        err.print(f"{target} is now {database}; the previous {database} is kept as {aside}")
        target = database
    # The last line of stdout is the restored database's name.
    typer.echo(target)


TopicsOption = Annotated[
    list[str] | None,
    typer.Option("--topic", "-t", help="Topic (repeatable; default: the platform's topics)"),
]


@backup_app.command("kafka")
def backup_kafka(topics: TopicsOption = None) -> None:
    """Copy every record of the topics to s3://<bucket>/_backups/kafka/<time>/; print its URI."""
    from dataplatform import kafka_backup
    from dataplatform.settings import get_kafka_settings

    try:
        uri = kafka_backup.backup_topics(
            kafka=get_kafka_settings(), s3=get_s3_settings(), topics=topics
        )
        manifest = kafka_backup.read_manifest(get_s3_settings(), uri)
    except (kafka_backup.KafkaBackupError, KafkaException) as exc:
        raise _fail(str(exc)) from None
    for topic in manifest.topics:
        ranges = ", ".join(f"{p.partition}:{p.low}..{p.high}" for p in topic.partitions)
        err.print(f"backed up {topic.topic} (id {topic.topic_id}), offsets {ranges}")
    # The last line of stdout is the URI: `kafka-restore` takes it.
    typer.echo(uri)


@backup_app.command("kafka-restore")
def restore_kafka(
    uri: Annotated[
        str,
        typer.Argument(
            help="A backup folder, s3://<bucket>/_backups/kafka/<time>/, or `latest`",
        ),
    ],
    topics: TopicsOption = None,
    record_only: Annotated[
        bool,
        typer.Option(
            "--record-only",
            help="Only record in PostgreSQL what an earlier restore of this backup brought "
            "back (when it could not: PostgreSQL was down)",
        ),
    ] = False,
) -> None:
    """Produce a backup's records into missing or empty topics, in order; check them back;
    record the restored offsets, so Idempotency-Key resends of them are not published again."""
    from dataplatform import kafka_backup
    from dataplatform.lake import get_lakehouse_settings
    from dataplatform.settings import get_kafka_settings

    s3 = get_s3_settings()
    try:
        chosen = kafka_backup.latest_backup(s3) if uri == "latest" else uri
        reports = kafka_backup.restore_topics(
            kafka=get_kafka_settings(),
            s3=s3,
            uri=chosen,
            topics=topics,
            lake_prefix=get_lakehouse_settings().lake_prefix,
            record_only=record_only,
        )
    except (kafka_backup.KafkaBackupError, KafkaException) as exc:
        raise _fail(str(exc)) from None
    for report in reports:
        token = (
            f"order token of epoch {report.source_epoch} kept in headers"
            if report.source_epoch is not None
            else "never landed: no order token to keep"
        )
        offsets = "same offsets" if report.offsets_preserved else "new offsets"
        err.print(
            f"[green]ok[/] {report.topic}: {report.records} records restored and read back "
            f"equal to the backup ({offsets}; {token})"
        )
    typer.echo(f"{'recorded the restore of' if record_only else 'restored'} {chosen}")
