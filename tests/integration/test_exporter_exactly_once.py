"""The lake exporter writes each outbox row to bronze exactly once, across crashes."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest
from deltalake import DeltaTable, write_deltalake

from dataplatform import samples
from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.contracts.bronze import BRONZE_PARTITION_COLUMNS, OUTBOX_EPOCH
from dataplatform.db.migrate import search_path
from dataplatform.exporter import LakeExporter, bronze_arrow_schema
from dataplatform.lake import Lake
from dataplatform.settings import ExporterSettings, PostgresSettings, S3Settings
from fastapi_app.testing import temporary_schema


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


@pytest.fixture
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


@pytest.fixture
def lake(s3_settings: S3Settings) -> Iterator[Lake]:
    prefix = f"tests/{uuid.uuid4().hex[:12]}"
    yield Lake.load(prefix=prefix, s3=s3_settings)
    delete_prefix(s3_settings, prefix)


@pytest.fixture
def settings(schema: str) -> ExporterSettings:
    return ExporterSettings().model_copy(update={"db_schema": schema, "batch_size": 40})


def _insert_outbox(
    postgres: PostgresSettings, schema: str, count: int, *, entity: str = "finance.transactions"
) -> set[str]:
    rng = random.Random()
    ids = []
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        for _ in range(count):
            record = (
                samples.transaction(rng) if entity == "finance.transactions" else samples.claim(rng)
            )
            key = record.get("transaction_id") or record["claim_id"]
            ingest_id = uuid.uuid4()
            conn.execute(
                "INSERT INTO outbox (ingest_id, entity, record_key, payload)"
                " VALUES (%s, %s, %s, %s)",
                (
                    ingest_id,
                    entity,
                    key,
                    orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode(),
                ),
            )
            ids.append(str(ingest_id))
    return set(ids)


def _bronze_ids(exporter: LakeExporter, s3: S3Settings, entity: Any = TRANSACTIONS) -> list[str]:
    table = DeltaTable(exporter.table_uri(entity), storage_options=s3.delta_storage_options())
    return table.to_pyarrow_table(columns=["ingest_id"]).column("ingest_id").to_pylist()


def _unexported(postgres: PostgresSettings, schema: str) -> int:
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        row = conn.execute("SELECT count(*) FROM outbox WHERE exported_at IS NULL").fetchone()
    return row[0] if row else -1


def test_crash_between_delta_commit_and_marking_exports_no_duplicates(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    schema: str,
    settings: ExporterSettings,
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _insert_outbox(postgres_settings, schema, 30)
    crashing = LakeExporter(postgres_settings, lake, settings)

    def crash(*_args: Any, **_kwargs: Any) -> int:
        raise Crash("killed after the Delta commit, before marking the rows")

    monkeypatch.setattr(crashing, "_mark_exported", crash)
    with pytest.raises(Crash):
        crashing.export_once()
    # The commit happened, the marking did not.
    assert sorted(_bronze_ids(crashing, s3_settings)) == sorted(expected)
    assert _unexported(postgres_settings, schema) == 30

    restarted = LakeExporter(postgres_settings, lake, settings)
    batches = restarted.export_once()
    assert [(b.entity, b.rows, b.recovered) for b in batches] == [
        ("finance.transactions", 30, True)
    ]
    assert sorted(_bronze_ids(restarted, s3_settings)) == sorted(expected)
    assert _unexported(postgres_settings, schema) == 0

    more = _insert_outbox(postgres_settings, schema, 5)
    restarted.export_once()
    ids = _bronze_ids(restarted, s3_settings)
    assert len(ids) == len(set(ids)) == 35
    assert set(ids) == expected | more


def test_crash_before_delta_commit_writes_the_batch_once_on_restart(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    schema: str,
    settings: ExporterSettings,
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _insert_outbox(postgres_settings, schema, 12, entity="insurance.claims")
    crashing = LakeExporter(postgres_settings, lake, settings)

    def crash(*_args: Any, **_kwargs: Any) -> int:
        raise Crash("killed after assigning the batch, before the Delta commit")

    monkeypatch.setattr(crashing, "_write", crash)
    with pytest.raises(Crash):
        crashing.export_once()
    # A row added meanwhile goes into a later batch, not into the one being retried.
    later = _insert_outbox(postgres_settings, schema, 3, entity="insurance.claims")

    restarted = LakeExporter(postgres_settings, lake, settings)
    batches = restarted.export_once()
    assert [(b.version, b.rows) for b in batches if b.entity == "insurance.claims"] == [
        (1, 12),
        (2, 3),
    ]
    ids = _bronze_ids(restarted, s3_settings, CLAIMS)
    assert len(ids) == len(set(ids)) == 15
    assert set(ids) == expected | later
    table = DeltaTable(
        restarted.table_uri(CLAIMS), storage_options=s3_settings.delta_storage_options()
    )
    assert table.transaction_version(restarted.app_id(CLAIMS)) == 2


def test_backlog_larger_than_a_batch_is_drained_in_several_commits(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    schema: str,
    settings: ExporterSettings,
    lake: Lake,
) -> None:
    expected = _insert_outbox(postgres_settings, schema, 100)
    exporter = LakeExporter(postgres_settings, lake, settings)
    batches = exporter.export_once()
    assert [b.rows for b in batches] == [40, 40, 20]
    ids = _bronze_ids(exporter, s3_settings)
    assert sorted(ids) == sorted(expected)
    assert exporter.export_once() == []
    # Created with the change feed on, as landing creates bronze: curation reads the feed, also
    # when the starter track was switched to Kafka on the same lake.
    table = DeltaTable(
        exporter.table_uri(TRANSACTIONS), storage_options=s3_settings.delta_storage_options()
    )
    assert table.metadata().configuration.get("delta.enableChangeDataFeed") == "true"


def test_order_token_is_outbox_id_and_older_bronze_gains_its_columns(
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    schema: str,
    settings: ExporterSettings,
    lake: Lake,
) -> None:
    exporter = LakeExporter(postgres_settings, lake, settings)
    # A bronze table from before the order token: the same columns without the last two.
    legacy = bronze_arrow_schema()
    legacy = legacy.remove(legacy.get_field_index("source_offset"))
    legacy = legacy.remove(legacy.get_field_index("source_epoch"))
    write_deltalake(
        exporter.table_uri(TRANSACTIONS),
        legacy.empty_table(),
        partition_by=list(BRONZE_PARTITION_COLUMNS),
        storage_options=s3_settings.delta_storage_options(),
    )
    _insert_outbox(postgres_settings, schema, 7)

    exporter.export_once()

    table = DeltaTable(
        exporter.table_uri(TRANSACTIONS), storage_options=s3_settings.delta_storage_options()
    )
    rows = table.to_pyarrow_table(columns=["outbox_id", "source_epoch", "source_offset"])
    tokens = rows.to_pylist()
    assert len(tokens) == 7
    assert all(
        row["source_epoch"] == OUTBOX_EPOCH and row["source_offset"] == row["outbox_id"]
        for row in tokens
    )
