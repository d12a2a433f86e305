"""Postgres backups to S3 and their restore check, on the real Postgres and S3 (no Airflow)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

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
    bin_dir = get_runtime_settings().postgres_bin_dir
    uri = backup.backup_postgres(
        postgres=postgres_settings,
        s3=s3_settings,
        databases=[postgres_settings.db],
        backup_date=backup_date,
        bin_dir=bin_dir,
    )
    # A manifest claiming one row more than the dump holds: the check must catch it.
    manifest = backup.read_manifest(uri, s3_settings)
    dump = manifest.dumps[0]
    wrong = replace(dump, row_counts={**dump.row_counts, marked_table: ROWS + 1})
    s3_client(s3_settings).put_object(
        Bucket=s3_settings.bucket,
        Key=f"{backup.BACKUP_PREFIX}/{backup_date.isoformat()}/{backup.MANIFEST}",
        Body=replace(manifest, dumps=[wrong]).to_json().encode(),
    )
    with pytest.raises(backup.BackupError, match=rf"{marked_table} want {ROWS + 1} got {ROWS}"):
        backup.verify_backup(uri, postgres=postgres_settings, s3=s3_settings, bin_dir=bin_dir)


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
