"""Backups of the platform's PostgreSQL databases to S3, and the restore check that proves them.

A backup is a folder `s3://<bucket>/_backups/postgres/<date>/` holding one `pg_dump` archive
(custom format) per database and a `manifest.json` written last, so a folder without a
manifest is an unfinished backup. Each database is dumped inside one exported snapshot, and the
row count and a content checksum of every table are taken in that same snapshot: the manifest
therefore states exactly what a restore must contain, even while the database keeps changing
(Airflow's metadata does).

Verification restores each archive into a scratch database `backup_check_<timestamp>_<db>`,
compares row counts and checksums with the manifest and drops the scratch database, whatever
happens. `restore_backup` restores one database the same way into a database that is kept
(recovery, and the PostgreSQL drill). The platform's role needs `CREATEDB` for both.
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
import time
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

#: Row count and checksum of one table. The checksum is the sum of the first 60 bits of the MD5
#: of each row's text: independent of row order (a restore may store rows in another order) and
#: of physical layout, but it changes when any value of any row does. `ROW(t.*)` and not `t`:
#: a column named `t` would shadow the whole-row reference.
_TABLE_STATS = (
    "SELECT count(*), coalesce(sum(('x' || left(md5(ROW(t.*)::text), 15))::bit(60)::bigint), 0)"
    " FROM {}.{} AS t"
)

#: Row text depends on these session settings; both sides of a comparison fix them, so a
#: database-level setting that a restore does not carry over cannot change a checksum.
_CANONICAL_TEXT_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'iso_8601'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
)


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
    #: `{"schema.table": checksum}` of the snapshot (empty in backups older than checksums).
    checksums: dict[str, str] = field(default_factory=dict)
    #: When the snapshot was taken (the dump's transaction start, ISO 8601, UTC).
    snapshot_at: str = ""

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
    #: Tables with the snapshot's row count whose content checksum differs.
    checksum_mismatches: list[str] = field(default_factory=list)
    #: Tables whose checksum was compared (0 for a backup older than checksums).
    checksums_compared: int = 0

    @property
    def ok(self) -> bool:
        """True when every table came back with the row count and checksum of the snapshot."""
        return not self.mismatches and not self.checksum_mismatches

    def problems(self) -> str:
        """What differs, one clause per table, for error messages."""
        clauses = [
            f"{table} want {want} got {got}" for table, (want, got) in self.mismatches.items()
        ]
        clauses += [f"{table} checksum differs" for table in self.checksum_mismatches]
        return ", ".join(clauses)


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


def table_stats(conn: psycopg.Connection) -> tuple[dict[str, int], dict[str, str]]:
    """Exact row count and content checksum of every table of the connected database.

    Returns:
        `({"schema.table": rows}, {"schema.table": checksum})`.
    """
    for setting in _CANONICAL_TEXT_SETTINGS:
        conn.execute(setting)
    counts: dict[str, int] = {}
    checksums: dict[str, str] = {}
    for schema, table in conn.execute(_TABLES_QUERY).fetchall():
        query = sql.SQL(_TABLE_STATS).format(sql.Identifier(schema), sql.Identifier(table))
        rows, checksum = conn.execute(query).fetchone() or (0, 0)
        counts[f"{schema}.{table}"] = int(rows)
        checksums[f"{schema}.{table}"] = format(int(checksum), "x")
    return counts, checksums


def compare_checksums(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Tables present on both sides whose checksums differ (missing tables are count errors)."""
    return sorted(t for t in expected.keys() & actual.keys() if expected[t] != actual[t])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """What `dump_database` saw: the snapshot's tables, its time and the server version."""

    row_counts: dict[str, int]
    checksums: dict[str, str]
    taken_at: str
    server_version: str


def dump_database(
    postgres: PostgresSettings, database: str, target: Path, *, bin_dir: Path
) -> Snapshot:
    """Dump one database to `target` and count and checksum its tables, in one snapshot.

    Returns:
        The row counts and checksums of the snapshot, its time and the server version.
    """
    with psycopg.connect(postgres.conninfo(dbname=database), autocommit=True) as conn:
        # The transaction stays open until pg_dump is done: that keeps the exported snapshot.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute(
            "SELECT pg_export_snapshot(), current_setting('server_version'), now()"
        ).fetchone()
        snapshot, version, taken_at = row or ("", "", datetime.now(UTC))
        counts, checksums = table_stats(conn)
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
    return Snapshot(
        row_counts=counts,
        checksums=checksums,
        taken_at=taken_at.astimezone(UTC).isoformat(),
        server_version=str(version),
    )


def create_database(postgres: PostgresSettings, name: str) -> None:
    """Create an empty database `name` owned by the platform's role.

    Raises:
        BackupError: The role may not create databases, or `name` exists already.
    """
    with psycopg.connect(postgres.conninfo(dbname="postgres"), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            raise BackupError(
                f"role {postgres.user} may not create the database {name}: grant it "
                f"with `ALTER ROLE {postgres.user} CREATEDB` (`dataplatform up` does so)"
            ) from None
        except psycopg.errors.DuplicateDatabase:
            raise BackupError(
                f"database {name} exists already: restore into a new name (--into)"
            ) from None


def drop_database(postgres: PostgresSettings, name: str, *, timeout_s: float = 60) -> None:
    """Drop `name` if it exists, disconnecting its sessions.

    A freshly restored database invites autovacuum, and `WITH (FORCE)` refuses to terminate
    an autovacuum worker unless the role is a member of `pg_signal_backend` (the platform's
    role is not). A plain `DROP DATABASE` does stop autovacuum workers, so it is the fallback,
    retried while other sessions are still going away.

    Raises:
        BackupError: Sessions of another role kept the database in use for `timeout_s`.
    """
    force = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    plain = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(postgres.conninfo(dbname="postgres"), autocommit=True) as conn:
        while True:
            try:
                conn.execute(force)
                return
            except psycopg.errors.InsufficientPrivilege:
                pass
            try:
                conn.execute(plain)
                return
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"database {name} is still in use by sessions the platform's role may "
                        "not end; drop it later"
                    ) from None
                time.sleep(1)


@contextmanager
def scratch_database(postgres: PostgresSettings, name: str) -> Iterator[str]:
    """Create an empty database for a restore check and drop it afterwards, even on error."""
    create_database(postgres, name)
    try:
        yield name
    finally:
        drop_database(postgres, name)


def _restore_into(
    postgres: PostgresSettings, dump: DatabaseDump, archive: Path, target: str, *, bin_dir: Path
) -> RestoreCheck:
    """`pg_restore` `archive` into the empty database `target`; compare it with the manifest."""
    _run_tool(
        [
            str(bin_dir / "pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--dbname={_conninfo(postgres, target)}",
            str(archive),
        ],
        postgres,
        f"pg_restore of {dump.database} into {target}",
    )
    with psycopg.connect(postgres.conninfo(dbname=target)) as conn:
        counts, checksums = table_stats(conn)
    return RestoreCheck(
        database=dump.database,
        scratch_database=target,
        tables=len(counts),
        rows=sum(counts.values()),
        mismatches=compare_counts(dump.row_counts, counts),
        checksum_mismatches=compare_checksums(dump.checksums, checksums),
        checksums_compared=len(dump.checksums.keys() & checksums.keys()),
    )


def restore_check(
    postgres: PostgresSettings, dump: DatabaseDump, archive: Path, *, bin_dir: Path
) -> RestoreCheck:
    """Restore `archive` into a scratch database, compare it with the manifest, drop it."""
    with scratch_database(postgres, scratch_name(dump.database)) as scratch:
        return _restore_into(postgres, dump, archive, scratch, bin_dir=bin_dir)


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
            snapshot = dump_database(postgres, database, archive, bin_dir=bin_dir)
            version = snapshot.server_version
            key = f"{prefix}{database}.dump"
            client.upload_file(str(archive), s3.bucket, key)
            dumps.append(
                DatabaseDump(
                    database=database,
                    key=key,
                    sha256=_sha256(archive),
                    size_bytes=archive.stat().st_size,
                    row_counts=snapshot.row_counts,
                    checksums=snapshot.checksums,
                    snapshot_at=snapshot.taken_at,
                )
            )
            log.info(
                "database dumped",
                extra={
                    "database": database,
                    "key": key,
                    "tables": len(snapshot.row_counts),
                    "rows": sum(snapshot.row_counts.values()),
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
    manifest = read_manifest(uri, s3)
    checks: list[RestoreCheck] = []
    with tempfile.TemporaryDirectory(prefix="pg-verify-") as tmp:
        for index, dump in enumerate(manifest.dumps):
            archive = _download(uri, dump, Path(tmp) / f"{index}.dump", s3)
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
        details = "; ".join(f"{check.database}: {check.problems()}" for check in failed)
        raise BackupError(f"restore check of {uri} failed: {details}")
    return checks


def _download(uri: str, dump: DatabaseDump, archive: Path, s3: S3Settings) -> Path:
    """Fetch one archive of the backup at `uri` and check it against the manifest's SHA-256."""
    bucket, _ = _split_uri(uri, s3)
    s3_client(s3).download_file(bucket, dump.key, str(archive))
    if _sha256(archive) != dump.sha256:
        raise BackupError(f"s3://{bucket}/{dump.key} does not match its manifest checksum")
    return archive


def restored_name(database: str, now: datetime | None = None) -> str:
    """`<db>_restored_<timestamp>`: where `restore_backup` puts a database by default."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return f"{database[: MAX_IDENTIFIER - 24]}_restored_{stamp}"


def restore_backup(
    uri: str,
    database: str,
    *,
    target: str,
    postgres: PostgresSettings,
    s3: S3Settings,
    bin_dir: Path,
) -> RestoreCheck:
    """Restore one database of a backup into the new database `target`, verified, and keep it.

    The archive's SHA-256 is checked, and after `pg_restore` every table's row count and
    checksum are compared with the manifest. A restore that does not match is dropped again:
    `target` exists afterwards only if it holds exactly the backup's snapshot.

    Args:
        uri: The backup folder, `s3://<bucket>/_backups/postgres/<date>/`.
        database: Which database of the backup to restore.
        target: The database to create and restore into; must not exist.
        postgres: Connection settings of the platform's role (needs `CREATEDB`).
        s3: Where the backups are.
        bin_dir: Folder of `pg_restore`.

    Returns:
        The comparison with the manifest (`ok`).

    Raises:
        BackupError: The backup has no such database, the archive is corrupt, `target` exists,
            the restore fails or the restored tables differ from the snapshot.
    """
    if not _DATABASE_NAME.fullmatch(target):
        raise BackupError(f"{target!r} is not a plain database name")
    manifest = read_manifest(uri, s3)
    dump = next((d for d in manifest.dumps if d.database == database), None)
    if dump is None:
        held = ", ".join(d.database for d in manifest.dumps)
        raise BackupError(f"the backup {uri} holds no database {database!r} (it holds {held})")
    with tempfile.TemporaryDirectory(prefix="pg-restore-") as tmp:
        archive = _download(uri, dump, Path(tmp) / "archive.dump", s3)
        create_database(postgres, target)
        try:
            check = _restore_into(postgres, dump, archive, target, bin_dir=bin_dir)
        except BaseException:
            drop_database(postgres, target)
            raise
    if not check.ok:
        drop_database(postgres, target)
        raise BackupError(f"restore of {database} from {uri} does not match: {check.problems()}")
    log.info(
        "database restored",
        extra={"database": database, "target": target, "tables": check.tables, "rows": check.rows},
    )
    return check


def replace_database(postgres: PostgresSettings, database: str, restored: str) -> str:
    """Rename `database` aside and `restored` to `database`; the old one is kept, not dropped.

    Returns:
        The name the previous `database` has now (`<database>_replaced_<timestamp>`), or ""
        when there was none (a lost database).

    Raises:
        BackupError: A session still uses either database (stop its services first).
    """
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    aside = f"{database[: MAX_IDENTIFIER - 24]}_replaced_{stamp}"
    rename = "ALTER DATABASE {} RENAME TO {}"
    with psycopg.connect(postgres.conninfo(dbname="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        had_one = exists.fetchone() is not None
        try:
            with conn.transaction():
                if had_one:
                    conn.execute(
                        sql.SQL(rename).format(sql.Identifier(database), sql.Identifier(aside))
                    )
                conn.execute(
                    sql.SQL(rename).format(sql.Identifier(restored), sql.Identifier(database))
                )
        except psycopg.errors.ObjectInUse:
            raise BackupError(
                f"{database} or {restored} is in use: stop the services connected to it "
                "(`dataplatform supervisorctl stop ...`) and run the restore again"
            ) from None
    return aside if had_one else ""
