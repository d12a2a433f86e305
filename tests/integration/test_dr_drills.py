"""The PostgreSQL and Delta disaster-recovery drills, end to end on the real platform.

Both are safe beside live traffic: the PostgreSQL drill backs up to a day no real backup uses
and restores into new databases it drops; the Delta drill works under a lake prefix of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import psycopg
import pytest

from dataplatform import backup
from dataplatform.clients.s3 import delete_prefix, s3_client
from dataplatform.dr_drills import DELTA_DRILL_TABLE, delta_drill, postgres_drill
from dataplatform.native.services import PLATFORM_DATABASES
from dataplatform.settings import PostgresSettings, S3Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MARKS = 30


@pytest.fixture
def drill_day(s3_settings: S3Settings) -> Iterator[date]:
    """A backup day of the drill's own; its folder is removed afterwards."""
    day = date(1999, 2, 1)
    yield day
    delete_prefix(s3_settings, f"{backup.BACKUP_PREFIX}/{day.isoformat()}")


def _leftovers(postgres: PostgresSettings) -> tuple[list[str], list[str]]:
    """Drill databases and drill schemas still present."""
    with psycopg.connect(postgres.conninfo(dbname="postgres")) as conn:
        databases = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'drill\\_%'"
        ).fetchall()
    with psycopg.connect(postgres.conninfo()) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'drill\\_%'"
        ).fetchall()
    return [row[0] for row in databases], [row[0] for row in schemas]


def test_drill_postgres_restores_ingest_and_airflow_databases_verified(
    postgres_settings: PostgresSettings, s3_settings: S3Settings, drill_day: date
) -> None:
    before = _leftovers(postgres_settings)

    report = postgres_drill(marks=MARKS, backup_date=drill_day)

    assert report.backup_uri == backup.backup_uri(s3_settings, drill_day)
    restored = {r.database: r for r in report.restored}
    assert set(restored) == {postgres_settings.db, *PLATFORM_DATABASES}
    for database in restored.values():
        # Every table's content was compared, not only counted.
        assert database.tables > 0
        assert database.checksums == database.tables
    assert report.marks_restored == MARKS
    assert report.marks_after_backup == MARKS
    assert 0 < report.rpo_window_s < 120
    assert report.rto_s > 0
    assert [name for name, _ in report.steps if "backup restore" in name] == [
        f"dataplatform backup restore <uri> --database {db}" for db in restored
    ]
    # Nothing of the drill stays behind: its databases and its schema are gone.
    assert _leftovers(postgres_settings) == before


def test_drill_delta_restores_the_last_good_version(s3_settings: S3Settings) -> None:
    report = delta_drill(rows=200)

    assert report.good is not None and report.damaged is not None
    assert report.good.rows == 400
    assert report.damaged.rows == 500
    assert report.good != report.damaged
    assert (report.good_version, report.damaged_version, report.restored_version) == (1, 3, 4)
    assert report.rto_s > 0
    prefix = report.table.removesuffix(f"/{DELTA_DRILL_TABLE}")
    listed = s3_client(s3_settings).list_objects_v2(
        Bucket=s3_settings.bucket, Prefix=f"{prefix}/", MaxKeys=1
    )
    assert listed.get("KeyCount", 0) == 0
