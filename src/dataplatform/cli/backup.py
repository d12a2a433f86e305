"""`dataplatform backup`: PostgreSQL backups to S3 and the restore check that proves them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.console import Console

from dataplatform import backup
from dataplatform.native.services import PLATFORM_DATABASES
from dataplatform.settings import get_postgres_settings, get_runtime_settings, get_s3_settings

backup_app = typer.Typer(
    help="Backups of the platform's PostgreSQL databases to S3, and restore checks.",
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
    """Restore each dump of a backup into a scratch database and compare row counts."""
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
            f"into {check.scratch_database} (dropped) match the manifest"
        )
    typer.echo(f"verified {uri}")
