"""`dataplatform db migrate`: create or upgrade the ingest schema in Postgres."""

from __future__ import annotations

import typer
from rich.console import Console

from dataplatform.db.migrate import migrate
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
