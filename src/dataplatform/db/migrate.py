"""Apply the plain SQL migrations in `migrations/` in order, once each, idempotently."""

from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

#: Any constant works; it only serialises concurrent migrators (ingestor and exporter starting
#: at the same time).
_LOCK_ID = 0x696E6765  # "inge"


def migration_files() -> list[tuple[str, str]]:
    """`(name, sql)` of every migration, sorted by file name."""
    folder = resources.files(__package__).joinpath("migrations")
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return files


def search_path(schema: str) -> sql.Composed:
    """`SET search_path TO <schema>` with the schema name quoted."""
    return sql.SQL("SET search_path TO {}").format(sql.Identifier(schema))


def migrate(conninfo: str, schema: str) -> list[str]:
    """Create `schema` if needed and apply the migrations it has not seen.

    Args:
        conninfo: libpq connection string.
        schema: Postgres schema to hold the ingest tables.

    Returns:
        The names of the migrations applied by this call.
    """
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(search_path(schema))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, text in migration_files():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                applied.append(name)
                log.info("applied migration %s to schema %s", name, schema)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied
