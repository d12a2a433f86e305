"""Pure parts of the Postgres backups: manifest, count and checksum comparison, names, URIs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from dataplatform import backup
from dataplatform.settings import S3Settings


def test_manifest_round_trips_through_json() -> None:
    manifest = backup.Manifest(
        backup_date="2026-11-27",
        created_at="2026-11-27T02:00:00+00:00",
        server_version="15.18",
        dumps=[
            backup.DatabaseDump(
                database="airflow",
                key="_backups/postgres/2026-11-27/airflow.dump",
                sha256="ab" * 32,
                size_bytes=1234,
                row_counts={"public.dag": 4},
                checksums={"public.dag": "3f2a"},
                snapshot_at="2026-11-27T02:00:00.123456+00:00",
            )
        ],
    )
    assert backup.Manifest.from_json(manifest.to_json()) == manifest


def test_manifest_without_checksums_still_reads() -> None:
    raw = {
        "backup_date": "2026-11-27",
        "created_at": "2026-11-27T02:00:00+00:00",
        "server_version": "15.18",
        "dumps": [
            {"database": "airflow", "key": "k", "sha256": "ab", "size_bytes": 1, "row_counts": {}}
        ],
    }
    dump = backup.Manifest.from_json(json.dumps(raw)).dumps[0]
    assert (dump.checksums, dump.snapshot_at) == ({}, "")


def test_compare_checksums_names_tables_whose_content_differs() -> None:
    expected = {"public.a": "1f", "public.b": "2e", "public.gone": "3d"}
    actual = {"public.a": "1f", "public.b": "2f", "public.new": "4c"}
    # Missing and extra tables are the row-count comparison's findings, not repeated here.
    assert backup.compare_checksums(expected, actual) == ["public.b"]
    assert backup.compare_checksums(expected, dict(expected)) == []


def test_restore_check_is_ok_only_when_counts_and_checksums_match() -> None:
    check = backup.RestoreCheck(
        database="airflow", scratch_database="x", tables=2, rows=9, mismatches={}
    )
    assert check.ok
    changed = backup.RestoreCheck(
        database="airflow",
        scratch_database="x",
        tables=2,
        rows=9,
        mismatches={"public.a": (3, 2)},
        checksum_mismatches=["public.b"],
    )
    assert not changed.ok
    assert changed.problems() == "public.a want 3 got 2, public.b checksum differs"


def test_restored_name_fits_postgres() -> None:
    now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert backup.restored_name("airflow", now) == "airflow_restored_20261127020000"
    assert len(backup.restored_name("x" * 80, now)) <= backup.MAX_IDENTIFIER


def test_compare_counts_names_changed_missing_and_extra_tables() -> None:
    expected = {"public.a": 3, "public.b": 5, "public.gone": 1}
    actual = {"public.a": 3, "public.b": 4, "public.new": 0}
    assert backup.compare_counts(expected, actual) == {
        "public.b": (5, 4),
        "public.gone": (1, None),
        "public.new": (None, 0),
    }
    assert backup.compare_counts(expected, dict(expected)) == {}


def test_scratch_name_is_unique_and_fits_postgres() -> None:
    now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    first = backup.scratch_name("airflow", now)
    assert first.startswith("backup_check_20261127020000_")
    assert first.endswith("_airflow")
    assert first != backup.scratch_name("airflow", now)
    assert len(backup.scratch_name("x" * 80, now)) == backup.MAX_IDENTIFIER


def test_backup_uri_and_its_forms_are_understood() -> None:
    s3 = S3Settings(bucket="lakehouse")
    uri = backup.backup_uri(s3, date(2026, 11, 27))
    assert uri == "s3://lakehouse/_backups/postgres/2026-11-27/"
    expected = ("lakehouse", "_backups/postgres/2026-11-27/")
    for form in (uri, uri.rstrip("/"), uri + "manifest.json"):
        assert backup._split_uri(form, s3) == expected
    with pytest.raises(backup.BackupError, match="s3://"):
        backup._split_uri("/tmp/backup", s3)


@pytest.mark.parametrize("name", ["../../x", "a/b", "", "x" * 64, "db;drop"])
def test_manifest_naming_a_path_instead_of_a_database_is_refused(name: str) -> None:
    raw = {
        "backup_date": "2026-11-27",
        "created_at": "2026-11-27T02:00:00+00:00",
        "server_version": "15.18",
        "dumps": [
            {"database": name, "key": "k", "sha256": "ab" * 32, "size_bytes": 1, "row_counts": {}}
        ],
    }
    with pytest.raises(backup.BackupError, match="invalid database"):
        backup.Manifest.from_json(json.dumps(raw))
