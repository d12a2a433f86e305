"""One writer per Delta table at a time: the table's commit lock, held in PostgreSQL.

Delta on S3 has no atomic put-if-absent for `_delta_log/N.json` that every writer here uses, so
two processes committing to one table can both write `N.json` and one commit is silently lost.
Every writer therefore takes the table's lock first: a PostgreSQL transaction-level advisory
lock, `pg_advisory_xact_lock(hashtextextended('<bucket>/<path>', 0))`.

- Spark takes it in the JVM around the put of each commit file (the log store
  `dataplatform.delta.PostgresLockedS3LogStore`, configured by `pyspark_jobs.session`).
- delta-rs writers commit inside Rust, so they hold it for the whole write with
  `table_commit_lock` (this module).

Both sides hash the same text key in SQL, so a Spark commit to `s3a://lakehouse/x` and a delta-rs
write to `s3://lakehouse/x` exclude each other. docs/LAKEHOUSE.md has the details and the cloud
equivalent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg import errors

from dataplatform.settings import PostgresSettings

log = logging.getLogger(__name__)

#: The lock statement; the JVM log store runs the same one.
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


class CommitLockTimeoutError(RuntimeError):
    """Another writer held the table's commit lock longer than the timeout."""


def table_lock_key(table_uri: str) -> str:
    """The lock key of a Delta table: `<bucket>/<path>`, without scheme or trailing slash.

    Args:
        table_uri: The table's root, `s3://bucket/path` (delta-rs) or `s3a://bucket/path`
            (Spark): both give the same key.

    Returns:
        The key, e.g. `lakehouse/bronze/finance/transactions`.

    Raises:
        ValueError: `table_uri` has no scheme or no bucket.
    """
    parts = urlsplit(table_uri)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not a table URI with a bucket: {table_uri!r} (e.g. s3://bucket/path)")
    return f"{parts.netloc}{parts.path}".rstrip("/")


@contextmanager
def table_commit_lock(
    postgres: PostgresSettings, table_uri: str, *, timeout_s: float | None = None
) -> Iterator[None]:
    """Hold the commit lock of a Delta table for the duration of the block.

    Args:
        postgres: Where the lock lives.
        table_uri: The table's root (`s3://` or `s3a://`).
        timeout_s: How long to wait for it; defaults to `POSTGRES_COMMIT_LOCK_TIMEOUT_S`.

    Yields:
        Nothing; the lock is held until the block ends (or the connection is lost).

    Raises:
        CommitLockTimeoutError: Another writer held the lock for longer than `timeout_s`.
        psycopg.OperationalError: Postgres is unreachable; nothing is written unlocked.
    """
    key = table_lock_key(table_uri)
    limit = postgres.commit_lock_timeout_s if timeout_s is None else timeout_s
    started = time.monotonic()
    with psycopg.connect(postgres.conninfo(), application_name="delta-commit-lock") as conn:
        # A transaction-level lock: it goes with the transaction, so a crashed writer (or a
        # lost connection) can never leave a table locked.
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(limit * 1000)}ms",))
        try:
            conn.execute(LOCK_SQL, (key,))
        except errors.LockNotAvailable:
            raise CommitLockTimeoutError(
                f"timed out after {limit:g} s waiting for the commit lock of Delta table {key}: "
                "another writer holds it (see pg_locks / pg_stat_activity; "
                "POSTGRES_COMMIT_LOCK_TIMEOUT_S sets the wait)"
            ) from None
        log.debug("commit lock of %s taken in %.3f s", key, time.monotonic() - started)
        try:
            yield
        finally:
            conn.rollback()
