"""Backups of the platform's PostgreSQL databases to S3, and the restore check that proves them.

A backup is a folder `s3://<bucket>/_backups/postgres/<date>/` holding one `pg_dump` archive
(custom format) per database and a `manifest.json` written last, so a folder without a
manifest is an unfinished backup. Each database is dumped inside one exported snapshot, and the
row count of every table is taken in that same snapshot: the manifest therefore states exactly
what a restore must contain, even while the database keeps changing (Airflow's metadata does).

Verification restores each archive into a scratch database `backup_check_<timestamp>_<db>`,
compares the row counts with the manifest and drops the scratch database, whatever happens. The
platform's role needs `CREATEDB` for that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dataplatform.clients.s3 import s3_client
from dataplatform.settings import PostgresSettings, S3Settings

log = logging.getLogger(__name__)

#: Folder of the backups inside the lake's bucket.
BACKUP_PREFIX = "_backups/postgres"
MANIFEST = "manifest.json"
#: Postgres truncates identifiers longer than this; scratch database names must fit.
MAX_IDENTIFIER = 63

#: Every ordinary table (partitions included; partitioned parents hold no rows of their own).
_TABLES_QUERY = """
    SELECT n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    ORDER BY 1, 2
"""


class BackupError(Exception):
    """A backup or a restore check failed; the message says what and how to fix it."""


#: What a database name in a manifest may be: a plain Postgres identifier, never a path.
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}")


@dataclass(frozen=True)
class DatabaseDump:
    """One database's archive in a backup, with the row counts of its snapshot.

    Raises:
        BackupError: `database` is not a plain identifier (a manifest is read from S3 and
            must not steer local paths or SQL).
    """

    database: str
    key: str
    sha256: str
    size_bytes: int
    row_counts: dict[str, int]

    def __post_init__(self) -> None:
        """Refuse database names that are not plain identifiers."""
        if not _DATABASE_NAME.fullmatch(self.database):
            raise BackupError(f"the manifest names an invalid database {self.database!r}")


@dataclass(frozen=True)
class Manifest:
    """What a backup folder holds; written last, as `manifest.json`."""

    backup_date: str
    created_at: str
    server_version: str
    dumps: list[DatabaseDump] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise for `manifest.json`."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a `manifest.json`."""
        raw = json.loads(text)
        return cls(
            backup_date=raw["backup_date"],
            created_at=raw["created_at"],
            server_version=raw["server_version"],
            dumps=[DatabaseDump(**dump) for dump in raw["dumps"]],
        )


@dataclass(frozen=True)
class RestoreCheck:
    """The outcome of restoring one database's archive."""

    database: str
    scratch_database: str
    tables: int
    rows: int
    mismatches: dict[str, tuple[int | None, int | None]]

    @property
    def ok(self) -> bool:
        """True when every table came back with the row count of the snapshot."""
        return not self.mismatches


def backup_uri(s3: S3Settings, backup_date: date) -> str:
    """`s3://<bucket>/_backups/postgres/<date>/`: the folder of one day's backup."""
    return f"s3://{s3.bucket}/{BACKUP_PREFIX}/{backup_date.isoformat()}/"


def compare_counts(
    expected: dict[str, int], actual: dict[str, int]
) -> dict[str, tuple[int | None, int | None]]:
    """Tables whose row counts differ, or that exist on one side only: `{table: (want, got)}`."""
    return {
        table: (expected.get(table), actual.get(table))
        for table in sorted(expected.keys() | actual.keys())
        if expected.get(table) != actual.get(table)
    }


def scratch_name(database: str, now: datetime | None = None) -> str:
    """`backup_check_<timestamp>_<random>_<db>`, cut to Postgres's identifier length.

    The random part keeps two checks started in the same second (a DAG run and a test) apart.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return f"backup_check_{stamp}_{secrets.token_hex(2)}_{database}"[:MAX_IDENTIFIER]


# --------------------------------------------------------------------------- PostgreSQL


def _conninfo(postgres: PostgresSettings, dbname: str) -> str:
    # No password here: the client tools get it through PGPASSWORD, never on a command line.
    return make_conninfo(host=postgres.host, port=postgres.port, user=postgres.user, dbname=dbname)


def _tool_env(postgres: PostgresSettings) -> dict[str, str]:
    return {
        **os.environ,
        "PGPASSWORD": postgres.password.get_secret_value(),
        "PGCONNECT_TIMEOUT": str(postgres.connect_timeout_s),
    }


def _run_tool(args: list[str], postgres: PostgresSettings, what: str) -> None:
    try:
        result = subprocess.run(
            args, env=_tool_env(postgres), capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BackupError(
            f"{args[0]} not found: install the PostgreSQL client (`apt-get install -y "
            "postgresql-client`) or set DATAPLATFORM_POSTGRES_BIN_DIR"
        ) from None
    if result.returncode != 0:
        raise BackupError(
            f"{what} failed ({Path(args[0]).name} exit {result.returncode}):\n"
            f"{result.stderr.strip()}"
        )


def count_rows(conn: psycopg.Connection) -> dict[str, int]:
    """Exact row count of every table of the connected database: `{"schema.table": rows}`."""
    counts: dict[str, int] = {}
    for schema, table in conn.execute(_TABLES_QUERY).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dump_database(
    postgres: PostgresSettings, database: str, target: Path, *, bin_dir: Path
) -> tuple[dict[str, int], str]:
    """Dump one database to `target` and count its rows, both in one snapshot.

    Returns:
        The row counts of the snapshot and the server version.
    """
    with psycopg.connect(postgres.conninfo(dbname=database), autocommit=True) as conn:
        # The transaction stays open until pg_dump is done: that keeps the exported snapshot.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        snapshot, version = row.fetchone() or ("", "")
        counts = count_rows(conn)
        _run_tool(
            [
                str(bin_dir / "pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={target}",
                f"--dbname={_conninfo(postgres, database)}",
            ],
            postgres,
            f"pg_dump of {database}",
        )
        conn.execute("COMMIT")
    return counts, str(version)


@contextmanager
def scratch_database(postgres: PostgresSettings, name: str) -> Iterator[str]:
    """Create an empty database for a restore check and drop it afterwards, even on error."""
    with psycopg.connect(postgres.conninfo(dbname="postgres"), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            raise BackupError(
                f"role {postgres.user} may not create the scratch database {name}: grant it "
                f"with `ALTER ROLE {postgres.user} CREATEDB` (`dataplatform up` does so)"
            ) from None
    try:
        yield name
    finally:
        with psycopg.connect(postgres.conninfo(dbname="postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def restore_check(
    postgres: PostgresSettings, dump: DatabaseDump, archive: Path, *, bin_dir: Path
) -> RestoreCheck:
    """Restore `archive` into a scratch database and compare row counts with the manifest."""
    with scratch_database(postgres, scratch_name(dump.database)) as scratch:
        _run_tool(
            [
                str(bin_dir / "pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--dbname={_conninfo(postgres, scratch)}",
                str(archive),
            ],
            postgres,
            f"pg_restore of {dump.database} into {scratch}",
        )
        with psycopg.connect(postgres.conninfo(dbname=scratch)) as conn:
            restored = count_rows(conn)
    return RestoreCheck(
        database=dump.database,
        scratch_database=scratch,
        tables=len(restored),
        rows=sum(restored.values()),
        mismatches=compare_counts(dump.row_counts, restored),
    )


# --------------------------------------------------------------------------- S3


def _split_uri(uri: str, s3: S3Settings) -> tuple[str, str]:
    """`s3://bucket/prefix[/manifest.json]` -> (bucket, `prefix/`)."""
    if not uri.startswith("s3://"):
        raise BackupError(f"not an s3:// URI: {uri!r} (expected {backup_uri(s3, date.today())})")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    key = key.removesuffix(MANIFEST).strip("/")
    return bucket, f"{key}/" if key else ""


def backup_postgres(
    *,
    postgres: PostgresSettings,
    s3: S3Settings,
    databases: Sequence[str],
    backup_date: date,
    bin_dir: Path,
) -> str:
    """Dump each database and upload the archives and the manifest.

    Re-running a date overwrites that date's backup (the manifest is replaced last).

    Args:
        postgres: Connection settings of the platform's role.
        s3: Where the backups go.
        databases: The databases to back up.
        backup_date: The day the backup belongs to (the folder name).
        bin_dir: Folder of `pg_dump`, whose major version must not be older than the server's.

    Returns:
        The URI of the backup folder.
    """
    uri = backup_uri(s3, backup_date)
    _, prefix = _split_uri(uri, s3)
    client = s3_client(s3)
    dumps: list[DatabaseDump] = []
    version = ""
    with tempfile.TemporaryDirectory(prefix="pg-backup-") as tmp:
        for database in databases:
            archive = Path(tmp) / f"{database}.dump"
            counts, version = dump_database(postgres, database, archive, bin_dir=bin_dir)
            key = f"{prefix}{database}.dump"
            client.upload_file(str(archive), s3.bucket, key)
            dumps.append(
                DatabaseDump(
                    database=database,
                    key=key,
                    sha256=_sha256(archive),
                    size_bytes=archive.stat().st_size,
                    row_counts=counts,
                )
            )
            log.info(
                "database dumped",
                extra={
                    "database": database,
                    "key": key,
                    "tables": len(counts),
                    "rows": sum(counts.values()),
                    "bytes": archive.stat().st_size,
                },
            )
    manifest = Manifest(
        backup_date=backup_date.isoformat(),
        created_at=datetime.now(UTC).isoformat(),
        server_version=version,
        dumps=dumps,
    )
    client.put_object(
        Bucket=s3.bucket,
        Key=f"{prefix}{MANIFEST}",
        Body=manifest.to_json().encode(),
        ContentType="application/json",
    )
    return uri


def read_manifest(uri: str, s3: S3Settings) -> Manifest:
    """The manifest of the backup folder at `uri`."""
    bucket, prefix = _split_uri(uri, s3)
    client = s3_client(s3)
    try:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}{MANIFEST}")["Body"].read()
    except client.exceptions.NoSuchKey:
        raise BackupError(
            f"no {MANIFEST} under {uri}: the backup is missing or did not finish"
        ) from None
    return Manifest.from_json(body.decode())


def verify_backup(
    uri: str, *, postgres: PostgresSettings, s3: S3Settings, bin_dir: Path
) -> list[RestoreCheck]:
    """Download each archive of a backup, check its checksum, restore it and compare counts.

    Raises:
        BackupError: An archive is missing or corrupt, a restore fails, or row counts differ.
    """
    bucket, _ = _split_uri(uri, s3)
    manifest = read_manifest(uri, s3)
    client = s3_client(s3)
    checks: list[RestoreCheck] = []
    with tempfile.TemporaryDirectory(prefix="pg-verify-") as tmp:
        for index, dump in enumerate(manifest.dumps):
            archive = Path(tmp) / f"{index}.dump"
            client.download_file(bucket, dump.key, str(archive))
            if _sha256(archive) != dump.sha256:
                raise BackupError(f"s3://{bucket}/{dump.key} does not match its manifest checksum")
            check = restore_check(postgres, dump, archive, bin_dir=bin_dir)
            log.info(
                "restore checked",
                extra={
                    "database": dump.database,
                    "scratch": check.scratch_database,
                    "tables": check.tables,
                    "rows": check.rows,
                    "ok": check.ok,
                },
            )
            checks.append(check)
    failed = [check for check in checks if not check.ok]
    if failed:
        details = "; ".join(
            f"{check.database}: "
            + ", ".join(
                f"{table} want {want} got {got}" for table, (want, got) in check.mismatches.items()
            )
            for check in failed
        )
        raise BackupError(f"restore check of {uri} failed: {details}")
    return checks
