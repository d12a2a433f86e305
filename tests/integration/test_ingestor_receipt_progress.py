"""Where a Kafka record is, from landing's progress in the real PostgreSQL, through the
ingestor's short per-partition cache (`PostgresStore.whereabouts`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from dataplatform.db.migrate import search_path
from dataplatform.ingest_ids import KafkaPlace
from dataplatform.settings import IngestorSettings, PostgresSettings
from fastapi_app.app.core.postgres import PostgresStore
from fastapi_app.app.core.progress_cache import TTL_S, WINDOW
from fastapi_app.app.core.store import Whereabouts
from fastapi_app.testing import temporary_schema

TOPIC_ID = "t-receipts"
ENTITY = "finance.transactions"


@pytest.fixture
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


def _report(postgres: PostgresSettings, schema: str, partition: int, *ends: int) -> None:
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        for end in ends:
            conn.execute(
                "INSERT INTO landing_progress (topic_id, topic, entity, kafka_partition,"
                " end_offset, landed_at) VALUES (%s, 't', %s, %s, %s,"
                " timestamptz '2026-12-01 00:00:00+00' + make_interval(secs => %s))",
                (TOPIC_ID, ENTITY, partition, end, end),
            )


def _quarantine(postgres: PostgresSettings, schema: str, ingest_id: str) -> None:
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        conn.execute(
            "INSERT INTO quarantined_records (ingest_id, entity, reason) VALUES (%s, %s, 'bad')",
            (ingest_id, ENTITY),
        )


def _settings(schema: str) -> IngestorSettings:
    """The ingestor's settings on `schema` (not from `.env`)."""
    return IngestorSettings(_env_file=None).model_copy(update={"db_schema": schema})


def _landed_second(where: Whereabouts) -> float | None:
    if where.landed_at is None:
        return None
    return (where.landed_at - datetime.fromisoformat("2026-12-01T00:00:00+00:00")).total_seconds()


def test_whereabouts_through_progress_cache_matches_reports(
    postgres_settings: PostgresSettings, schema: str
) -> None:
    # Partition 0: more reports than the cache keeps, so its oldest offsets take the
    # record's own query; partition 1: one report.
    _report(postgres_settings, schema, 0, *range(10, 10 * (WINDOW + 20), 10))
    _report(postgres_settings, schema, 1, 50)
    _quarantine(postgres_settings, schema, "id-quarantined")
    store = PostgresStore(postgres_settings, _settings(schema))

    async def ask() -> list[Whereabouts]:
        await store.start()
        try:
            first = [
                await store.whereabouts(KafkaPlace(TOPIC_ID, partition, offset, 0), ingest_id)
                for partition, offset, ingest_id in [
                    (0, 5, "id-a"),  # older than the cached window: own query
                    (0, 10 * (WINDOW + 10) + 5, "id-b"),  # in the window
                    (0, 10 * (WINDOW + 20), "id-c"),  # past every report
                    (1, 49, "id-quarantined"),
                    (1, 50, "id-d"),
                ]
            ]
            _report(postgres_settings, schema, 1, 60)
            await asyncio.sleep(TTL_S + 0.1)
            fresh = await store.whereabouts(KafkaPlace(TOPIC_ID, 1, 55, 0), "id-e")
            return [*first, fresh]
        finally:
            await store.close()

    older, in_window, not_yet, quarantined, not_yet_1, fresh = asyncio.run(ask())
    assert (older.entity, _landed_second(older)) == (ENTITY, 10)
    assert (in_window.entity, _landed_second(in_window)) == (ENTITY, 10 * (WINDOW + 11))
    assert not_yet == Whereabouts()
    assert quarantined.quarantine_reason == "bad"
    assert _landed_second(quarantined) == 50
    assert not_yet_1 == Whereabouts()
    # A report made after the partition's snapshot is seen once the snapshot expired.
    assert (fresh.entity, _landed_second(fresh), fresh.quarantine_reason) == (ENTITY, 60, None)


def _curated(postgres: PostgresSettings, schema: str, table: str, *versions: int) -> None:
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        for version in versions:
            conn.execute(
                "INSERT INTO curation_progress (bronze_table, entity, bronze_version, curated_at)"
                " VALUES (%s, %s, %s,"
                " timestamptz '2026-12-01 00:00:00+00' + make_interval(secs => %s))",
                (table, ENTITY, version, 1000 + version),
            )


def test_whereabouts_curated_once_curation_processed_the_landed_version(
    postgres_settings: PostgresSettings, schema: str
) -> None:
    table = "s3://lakehouse/t/bronze/finance/transactions"
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(search_path(schema))
        # Offsets below 10 landed in version 4, below 20 in a replayed batch (no version),
        # below 30 in version 6; a record of a quarantined id is never curated.
        for end, version in [(10, 4), (20, None), (30, 6)]:
            conn.execute(
                "INSERT INTO landing_progress (topic_id, topic, entity, kafka_partition,"
                " end_offset, bronze_table, bronze_version) VALUES (%s, 't', %s, 0, %s, %s, %s)",
                (TOPIC_ID, ENTITY, end, table, version),
            )
    _quarantine(postgres_settings, schema, "id-quarantined")
    # Runs that processed through versions 2, 5 (covers 4) and, later, 7 (covers 6); another
    # lake's table with a higher version changes nothing.
    _curated(postgres_settings, schema, table, 2, 5)
    _curated(postgres_settings, schema, "s3://lakehouse/other/bronze/finance/transactions", 99)
    store = PostgresStore(postgres_settings, _settings(schema))

    def curated_second(where: Whereabouts) -> float | None:
        if where.curated_at is None:
            return None
        start = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
        return (where.curated_at - start).total_seconds()

    async def ask(offset: int, ingest_id: str = "id-x") -> Whereabouts:
        return await store.whereabouts(KafkaPlace(TOPIC_ID, 0, offset, 0), ingest_id)

    async def scenario() -> list[float | None]:
        await store.start()
        try:
            first = [await ask(5), await ask(15), await ask(25), await ask(5, "id-quarantined")]
            _curated(postgres_settings, schema, table, 7)
            await asyncio.sleep(TTL_S + 0.1)
            later = [await ask(15), await ask(35)]
            return [curated_second(where) for where in [*first, *later]]
        finally:
            await store.close()

    assert asyncio.run(scenario()) == [1005, None, None, None, 1007, None]


def test_whereabouts_of_records_curation_quarantined_never_curated_into_silver(
    postgres_settings: PostgresSettings, schema: str
) -> None:
    table = "s3://lakehouse/t/bronze/finance/transactions"
    # More reports than the cache keeps, all in bronze version 3, which curation processed.
    ends = range(10, 10 * (WINDOW + 20), 10)
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(search_path(schema))
        for end in ends:
            conn.execute(
                "INSERT INTO landing_progress (topic_id, topic, entity, kafka_partition,"
                " end_offset, bronze_table, bronze_version) VALUES (%s, 't', %s, 0, %s, %s, 3)",
                (TOPIC_ID, ENTITY, end, table),
            )
        # Recorded with the run's progress; a record landing refused keeps `landing`.
        for ingest_id, job in [("id-old", "curation"), ("id-new", "curation"), ("id-l", "landing")]:
            conn.execute(
                "INSERT INTO quarantined_records (ingest_id, entity, reason, job, quarantined_at)"
                " VALUES (%s, %s, %s, %s, timestamptz '2026-12-01 00:00:00+00' + interval '1h')",
                (ingest_id, ENTITY, f"refused by {job}", job),
            )
    _curated(postgres_settings, schema, table, 3)
    store = PostgresStore(postgres_settings, _settings(schema))

    async def ask() -> list[Whereabouts]:
        await store.start()
        try:
            return [
                await store.whereabouts(KafkaPlace(TOPIC_ID, 0, offset, 0), ingest_id)
                for offset, ingest_id in [
                    (5, "id-old"),  # older than the cached window: own query
                    (10 * (WINDOW + 10) + 5, "id-new"),  # in the window
                    (10 * (WINDOW + 10) + 6, "id-good"),
                    (10 * (WINDOW + 10) + 7, "id-l"),
                ]
            ]
        finally:
            await store.close()

    old, new, good, landing = asyncio.run(ask())
    start = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    for refused in (old, new):
        assert (refused.quarantine_reason, refused.quarantined_by) == (
            "refused by curation",
            "curation",
        )
        assert refused.curated_at is not None and refused.curated_at - start == timedelta(hours=1)
    assert (good.quarantined_by, good.curated_at) == (None, start + timedelta(seconds=1003))
    assert (landing.quarantine_reason, landing.quarantined_by, landing.curated_at) == (
        "refused by landing",
        "landing",
        None,
    )
