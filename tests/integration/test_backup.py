"""Postgres backups to S3, their restore check and restore, on the real Postgres and S3."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dataplatform import backup
from dataplatform.clients.s3 import s3_client
from dataplatform.settings import PostgresSettings, S3Settings, get_runtime_settings
from tests.factories import unique

ROWS = 25


@pytest.fixture
def marked_table(postgres_settings: PostgresSettings) -> Iterator[str]:
    """A table with a known number of rows in the platform's database, dropped afterwards."""
    schema = unique("backup_test").replace("-", "_").lower()
    with psycopg.connect(postgres_settings.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {}.marks (id int PRIMARY KEY, note text)").format(
                sql.Identifier(schema)
            )
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.marks SELECT g, 'row ' || g FROM generate_series(1, %s) g"
            ).format(sql.Identifier(schema)),
            (ROWS,),
        )
    yield f"{schema}.marks"
    with psycopg.connect(postgres_settings.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def backup_date(s3_settings: S3Settings) -> Iterator[date]:
    """A day no real backup uses; its folder is removed afterwards."""
    day = date(1999, 1, 1)
    yield day
    client = s3_client(s3_settings)
    prefix = f"{backup.BACKUP_PREFIX}/{day.isoformat()}/"
    listed = client.list_objects_v2(Bucket=s3_settings.bucket, Prefix=prefix)
    for item in listed.get("Contents", []):
        client.delete_object(Bucket=s3_settings.bucket, Key=item["Key"])


def _backup(postgres: PostgresSettings, s3: S3Settings, database: str, day: date) -> str:
    return backup.backup_postgres(
        postgres=postgres,
        s3=s3,
        databases=[database],
        backup_date=day,
        bin_dir=get_runtime_settings().postgres_bin_dir,
    )


def _rewrite_manifest(s3: S3Settings, day: date, **changes: dict[str, object]) -> None:
    """Replace fields of the first dump in the day's manifest (a lying manifest)."""
    uri = backup.backup_uri(s3, day)
    manifest = backup.read_manifest(uri, s3)
    dump = manifest.dumps[0]
    wrong = replace(dump, **{k: {**getattr(dump, k), **v} for k, v in changes.items()})
    s3_client(s3).put_object(
        Bucket=s3.bucket,
        Key=f"{backup.BACKUP_PREFIX}/{day.isoformat()}/{backup.MANIFEST}",
        Body=replace(manifest, dumps=[wrong]).to_json().encode(),
    )


def _scratch_databases(postgres: PostgresSettings) -> set[str]:
    with psycopg.connect(postgres.conninfo(dbname="postgres")) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'backup\\_check\\_%'"
        ).fetchall()
    return {row[0] for row in rows}


def test_backup_postgres_then_verify_restores_every_row(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    marked_table: str,
    backup_date: date,
) -> None:
    bin_dir = get_runtime_settings().postgres_bin_dir
    uri = backup.backup_postgres(
        postgres=postgres_settings,
        s3=s3_settings,
        databases=[postgres_settings.db, "airflow"],
        backup_date=backup_date,
        bin_dir=bin_dir,
    )
    assert uri == f"s3://{s3_settings.bucket}/_backups/postgres/1999-01-01/"
    manifest = backup.read_manifest(uri, s3_settings)
    platform = next(d for d in manifest.dumps if d.database == postgres_settings.db)
    assert platform.row_counts[marked_table] == ROWS

    checks = backup.verify_backup(uri, postgres=postgres_settings, s3=s3_settings, bin_dir=bin_dir)

    assert [check.database for check in checks] == [postgres_settings.db, "airflow"]
    assert all(check.ok for check in checks)
    restored = next(c for c in checks if c.database == postgres_settings.db)
    assert restored.rows >= ROWS
    assert not {check.scratch_database for check in checks} & _scratch_databases(postgres_settings)


def test_verify_reports_row_counts_that_differ_from_the_manifest(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    marked_table: str,
    backup_date: date,
) -> None:
    uri = _backup(postgres_settings, s3_settings, postgres_settings.db, backup_date)
    # A manifest claiming one row more than the dump holds: the check must catch it.
    _rewrite_manifest(s3_settings, backup_date, row_counts={marked_table: ROWS + 1})
    with pytest.raises(backup.BackupError, match=rf"{marked_table} want {ROWS + 1} got {ROWS}"):
        backup.verify_backup(
            uri,
            postgres=postgres_settings,
            s3=s3_settings,
            bin_dir=get_runtime_settings().postgres_bin_dir,
        )


def test_verify_refuses_a_corrupted_dump(
    postgres_settings: PostgresSettings, s3_settings: S3Settings, backup_date: date
) -> None:
    bin_dir = get_runtime_settings().postgres_bin_dir
    uri = backup.backup_postgres(
        postgres=postgres_settings,
        s3=s3_settings,
        databases=[postgres_settings.db],
        backup_date=backup_date,
        bin_dir=bin_dir,
    )
    key = backup.read_manifest(uri, s3_settings).dumps[0].key
    s3_client(s3_settings).put_object(Bucket=s3_settings.bucket, Key=key, Body=b"not a dump")
    with pytest.raises(backup.BackupError, match="checksum"):
        backup.verify_backup(uri, postgres=postgres_settings, s3=s3_settings, bin_dir=bin_dir)


def test_verify_of_a_missing_backup_names_the_problem(s3_settings: S3Settings) -> None:
    with pytest.raises(backup.BackupError, match="missing or did not finish"):
        backup.read_manifest(
            f"s3://{s3_settings.bucket}/_backups/postgres/1900-01-01/", s3_settings
        )


def test_verify_reports_a_table_whose_content_changed_with_the_same_count(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    marked_table: str,
    backup_date: date,
) -> None:
    uri = _backup(postgres_settings, s3_settings, postgres_settings.db, backup_date)
    dump = backup.read_manifest(uri, s3_settings).dumps[0]
    assert dump.checksums.keys() == dump.row_counts.keys()
    assert dump.snapshot_at
    # Same rows, other content: only the checksum can tell.
    _rewrite_manifest(s3_settings, backup_date, checksums={marked_table: "1"})
    with pytest.raises(backup.BackupError, match=rf"{marked_table} checksum differs"):
        backup.verify_backup(
            uri,
            postgres=postgres_settings,
            s3=s3_settings,
            bin_dir=get_runtime_settings().postgres_bin_dir,
        )


@pytest.fixture
def damaged_database(postgres_settings: PostgresSettings) -> Iterator[str]:
    """A database of its own with a table of known rows; it and its renamed copies are dropped."""
    name = unique("restore_test").replace("-", "_").lower()[:40]
    backup.create_database(postgres_settings, name)
    with psycopg.connect(postgres_settings.conninfo(dbname=name), autocommit=True) as conn:
        conn.execute("CREATE TABLE marks (id int PRIMARY KEY, note text)")
        conn.execute(
            "INSERT INTO marks SELECT g, 'row ' || g FROM generate_series(1, %s) g", (ROWS,)
        )
    yield name
    with psycopg.connect(postgres_settings.conninfo(dbname="postgres")) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}%",)
        ).fetchall()
    for (database,) in rows:
        backup.drop_database(postgres_settings, database)


def _marks(postgres: PostgresSettings, database: str) -> list[tuple[int, str]]:
    with psycopg.connect(postgres.conninfo(dbname=database)) as conn:
        return conn.execute("SELECT id, note FROM marks ORDER BY id").fetchall()


def test_backup_restore_replace_puts_the_backup_in_place_of_a_damaged_database(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    damaged_database: str,
    backup_date: date,
) -> None:
    uri = _backup(postgres_settings, s3_settings, damaged_database, backup_date)
    good = _marks(postgres_settings, damaged_database)
    with psycopg.connect(
        postgres_settings.conninfo(dbname=damaged_database), autocommit=True
    ) as conn:
        conn.execute("UPDATE marks SET note = 'damaged' WHERE id % 2 = 0")
        conn.execute("DELETE FROM marks WHERE id > 20")

    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dataplatform"),
            "backup",
            "restore",
            uri,
            "--database",
            damaged_database,
            "--replace",
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == damaged_database
    assert _marks(postgres_settings, damaged_database) == good
    aside = re.search(rf"kept as ({damaged_database}_replaced_\d+)", result.stderr)
    assert aside, result.stderr
    damaged = _marks(postgres_settings, aside.group(1))
    assert len(damaged) == 20 and damaged[1] == (2, "damaged")


def test_backup_restore_into_an_existing_database_is_refused(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    damaged_database: str,
    backup_date: date,
) -> None:
    uri = _backup(postgres_settings, s3_settings, damaged_database, backup_date)
    with pytest.raises(backup.BackupError, match="exists already"):
        backup.restore_backup(
            uri,
            damaged_database,
            target=damaged_database,
            postgres=postgres_settings,
            s3=s3_settings,
            bin_dir=get_runtime_settings().postgres_bin_dir,
        )
    assert len(_marks(postgres_settings, damaged_database)) == ROWS
