"""The ingest store's answers to an Idempotency-Key resend after a topic was lost, on the real
PostgreSQL: which records landed or were restored, and reopening a binding exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest

from dataplatform.db.migrate import search_path
from dataplatform.db.progress import (
    PartitionProgress,
    ProgressWriter,
    RestoredRange,
    record_restored,
)
from dataplatform.ingest_ids import KafkaPlace
from dataplatform.settings import IngestorSettings, PostgresSettings
from fastapi_app.app.core.postgres import PostgresStore
from fastapi_app.app.core.store import Receipt

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _store(postgres: PostgresSettings, schema: str) -> PostgresStore:
    return PostgresStore(postgres, IngestorSettings(_env_file=None, INGEST_DB_SCHEMA=schema))


def test_vanished_records_are_those_neither_landed_nor_restored(
    postgres_settings: PostgresSettings, ingest_schema: str
) -> None:
    landing = ProgressWriter(postgres_settings, ingest_schema)
    landing.landed([PartitionProgress("old-id", "t", "finance.transactions", 0, 10)])
    landing.close()
    record_restored(postgres_settings, ingest_schema, [RestoredRange("old-id", 1, 5, 20)])
    asked = {
        ("old-id", 0, 9): False,  # landed before the loss
        ("old-id", 0, 10): True,  # landing had not reached it
        ("old-id", 1, 4): True,  # before the backup's first offset
        ("old-id", 1, 5): False,  # restored
        ("old-id", 1, 19): False,
        ("old-id", 1, 20): True,  # acknowledged after the backup
        ("other-id", 0, 0): True,  # another topic generation
    }

    async def ask() -> list[bool]:
        store = _store(postgres_settings, ingest_schema)
        await store.start()
        try:
            return await store.vanished([KafkaPlace(*place, 0) for place in asked])
        finally:
            await store.close()

    assert asyncio.run(ask()) == list(asked.values())


def test_reopen_idempotency_key_once_then_complete_again(
    postgres_settings: PostgresSettings, ingest_schema: str
) -> None:
    now = datetime.now(UTC)
    old = Receipt("k1.old", "finance.transactions", "FT-1", "kafka", now, now, "t", 0, 3)
    new = Receipt("k1.new", "finance.transactions", "FT-1", "kafka", now, now, "t", 0, 0)

    async def run() -> list[object]:
        store = _store(postgres_settings, ingest_schema)
        await store.start()
        key = {"principal": "p", "key": "lost-1"}
        try:
            claimed = await store.claim_idempotency_key(**key, route="r", request_sha256=b"x")
            await store.complete_idempotency_key(**key, receipts=[old])
            first = await store.reopen_idempotency_key(**key)
            # A concurrent resend neither reopens it nor publishes: it is in progress.
            second = await store.reopen_idempotency_key(**key)
            during = await store.claim_idempotency_key(**key, route="r", request_sha256=b"x")
            await store.complete_idempotency_key(**key, receipts=[new])
            after = await store.claim_idempotency_key(**key, route="r", request_sha256=b"x")
            return [claimed.state, first, second, during.state, after.state, after.receipts]
        finally:
            await store.close()

    assert asyncio.run(run()) == ["claimed", True, False, "in_progress", "replay", (new,)]
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(search_path(ingest_schema))
        [(state,)] = conn.execute("SELECT state FROM idempotency_keys").fetchall()
    assert state == "complete"
