"""`dataplatform db migrate|prune`: the ingest schema in Postgres, and its retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from dataplatform.db.migrate import migrate
from dataplatform.db.retention import prune
from dataplatform.settings import get_ingestor_settings, get_postgres_settings

db_app = typer.Typer(help="The ingest schema in Postgres.", no_args_is_help=True)
console = Console()


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations to INGEST_DB_SCHEMA (idempotent; the services also do it)."""
    schema = get_ingestor_settings().db_schema
    applied = migrate(get_postgres_settings().conninfo(), schema)
    if applied:
        console.print(f"applied to schema {schema}: {', '.join(applied)}")
    else:
        console.print(f"schema {schema} is up to date")


@db_app.command("prune")
def db_prune(
    older_than_days: Annotated[
        float,
        typer.Option(
            min=1,
            help="Keep this many days of idempotency keys, exported outbox rows, landing progress",
        ),
    ] = 30,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go")] = False,
) -> None:
    """Delete Idempotency-Key bindings, exported outbox rows and landing progress past retention.

    A retry inside the window still gets its original receipt; after it, an exact resend is
    accepted again (curation keeps one silver row per key). Pending rows are never deleted.
    """
    settings = get_ingestor_settings()
    schema = settings.db_schema
    counts = prune(
        get_postgres_settings().conninfo(),
        schema,
        keep=timedelta(days=older_than_days),
        idempotency_ttl=timedelta(hours=settings.idempotency_ttl_h),
        dry_run=dry_run,
    )
    verb = "would delete" if dry_run else "deleted"
    for table, rows in counts.items():
        console.print(f"{schema}.{table}: {verb} {rows} rows older than {older_than_days:g} days")
