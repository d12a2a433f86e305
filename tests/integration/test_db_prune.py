"""Retention of the ingest bookkeeping on the real Postgres: only finished, old rows go."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from dataplatform.db.migrate import search_path
from dataplatform.db.retention import prune
from dataplatform.settings import PostgresSettings
from fastapi_app.testing import temporary_schema

pytestmark = pytest.mark.integration

OLD, RECENT = "now() - interval '40 days'", "now() - interval '1 day'"
DAY, MONTH = timedelta(days=1), timedelta(days=30)


@pytest.fixture
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


def _fill(postgres: PostgresSettings, schema: str) -> None:
    """Per table: one finished row past retention, one recent, one unfinished and old."""
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        # Partition 0 has an old report superseded by a recent one; partition 1 only an old
        # one, which must stay (it says every offset below it has landed).
        for partition, end_offset, landed_at in [(0, 10, OLD), (0, 20, RECENT), (1, 5, OLD)]:
            conn.execute(
                "INSERT INTO landing_progress (topic_id, topic, entity, kafka_partition,"
                f" end_offset, landed_at) VALUES ('t-id', 't', 'finance.transactions', %s, %s,"
                f" {landed_at})",
                (partition, end_offset),
            )
        # Table a: an old curation report superseded by a recent one; table b: only an old one,
        # which must stay (it says every version up to it is curated).
        for table, version, curated_at in [("a", 1, OLD), ("a", 2, RECENT), ("b", 1, OLD)]:
            conn.execute(
                "INSERT INTO curation_progress (bronze_table, entity, bronze_version, curated_at)"
                f" VALUES (%s, 'finance.transactions', %s, {curated_at})",
                (table, version),
            )
        for key, quarantined_at in [("old-reason", OLD), ("recent-reason", RECENT)]:
            conn.execute(
                "INSERT INTO quarantined_records (ingest_id, entity, reason, quarantined_at)"
                f" VALUES (%s, 'finance.transactions', %s, {quarantined_at})",
                (key, key),
            )
        for key, created_at in [("old-key", OLD), ("recent-key", RECENT)]:
            conn.execute(
                "INSERT INTO idempotency_keys (principal, idempotency_key, route, request_sha256,"
                f" created_at) VALUES ('tests', %s, '/transactions', %s, {created_at})",
                (key, key.encode()),
            )
        for key, exported_at in [("old-exported", OLD), ("recent", RECENT), ("pending", "NULL")]:
            conn.execute(
                "INSERT INTO outbox (ingest_id, entity, record_key, payload, ingested_at,"
                f" exported_at) VALUES (%s, 'finance.transactions', %s, '{{}}', {OLD},"
                f" {exported_at})",
                (uuid.uuid4(), key),
            )


def _left(postgres: PostgresSettings, schema: str) -> dict[str, set[str]]:
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        return {
            "landing_progress": {
                f"{r[0]}:{r[1]}"
                for r in conn.execute("SELECT kafka_partition, end_offset FROM landing_progress")
            },
            "quarantined_records": {
                r[0] for r in conn.execute("SELECT ingest_id FROM quarantined_records")
            },
            "idempotency_keys": {
                r[0] for r in conn.execute("SELECT idempotency_key FROM idempotency_keys")
            },
            "outbox": {r[0] for r in conn.execute("SELECT record_key FROM outbox")},
            "curation_progress": {
                f"{r[0]}:{r[1]}"
                for r in conn.execute("SELECT bronze_table, bronze_version FROM curation_progress")
            },
        }


def test_prune_deletes_only_finished_rows_past_retention(
    postgres_settings: PostgresSettings, schema: str
) -> None:
    _fill(postgres_settings, schema)
    everything = _left(postgres_settings, schema)
    conninfo = postgres_settings.conninfo()

    dry = prune(conninfo, schema, keep=MONTH, idempotency_ttl=DAY, dry_run=True)
    assert dry == {
        "idempotency_keys": 1,
        "outbox": 1,
        "landing_progress": 1,
        "quarantined_records": 1,
        "curation_progress": 1,
    }
    assert _left(postgres_settings, schema) == everything

    done = prune(conninfo, schema, keep=MONTH, idempotency_ttl=DAY)
    assert done == dry
    assert _left(postgres_settings, schema) == {
        "idempotency_keys": {"recent-key"},
        "outbox": {"recent", "pending"},
        "landing_progress": {"0:20", "1:5"},
        "quarantined_records": {"recent-reason"},
        "curation_progress": {"a:2", "b:1"},
    }
    again = prune(conninfo, schema, keep=MONTH, idempotency_ttl=DAY)
    assert set(again.values()) == {0}


def test_prune_keeps_idempotency_keys_the_ingestor_still_honours(
    postgres_settings: PostgresSettings, schema: str
) -> None:
    _fill(postgres_settings, schema)
    # A 12-hour window, but keys are honoured for 60 days: the 40-day-old binding stays.
    done = prune(postgres_settings.conninfo(), schema, keep=DAY / 2, idempotency_ttl=60 * DAY)
    assert done == {
        "idempotency_keys": 0,
        "outbox": 2,
        "landing_progress": 1,
        "quarantined_records": 2,
        "curation_progress": 1,
    }


def test_prune_command_reports_and_refuses_a_window_under_a_day(
    postgres_settings: PostgresSettings, schema: str
) -> None:
    _fill(postgres_settings, schema)
    command = [str(Path(sys.executable).parent / "dataplatform"), "db", "prune"]
    env = {**os.environ, "INGEST_DB_SCHEMA": schema}

    result = subprocess.run(
        [*command, "--older-than-days", "30"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"{schema}.landing_progress: deleted 1 rows older than 30 days" in result.stdout
    assert f"{schema}.outbox: deleted 1 rows older than 30 days" in result.stdout

    refused = subprocess.run(
        [*command, "--older-than-days", "0.5"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "older-than-days" in refused.stderr
