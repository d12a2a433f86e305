"""The lake exporter's bronze layout: exactly `BRONZE_COLUMNS`, its table URIs and app ids."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa

from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.contracts.bronze import BRONZE_COLUMNS, kafka_bronze_rows
from dataplatform.exporter import LakeExporter, bronze_arrow_schema
from dataplatform.lake import Lake
from dataplatform.settings import ExporterSettings, PostgresSettings, S3Settings
from tests.factories import transaction


def test_bronze_arrow_schema_matches_bronze_columns() -> None:
    schema = bronze_arrow_schema()
    assert schema.names == [name for name, *_ in BRONZE_COLUMNS]
    assert [field.nullable for field in schema] == [
        nullable for _, _, nullable, _ in BRONZE_COLUMNS
    ]
    assert schema.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("ingest_date").type == pa.date32()
    assert schema.field("kafka_partition").type == pa.int32()
    assert schema.field("kafka_offset").type == pa.int64()


def _exporter(*, lake_prefix: str = "", db_schema: str = "ingest") -> LakeExporter:
    lake = Lake.load(prefix=lake_prefix, s3=S3Settings(bucket="lakehouse"))
    settings = ExporterSettings().model_copy(update={"db_schema": db_schema})
    return LakeExporter(PostgresSettings(), lake, settings)


def test_table_uri_follows_the_lake_layout() -> None:
    assert (
        _exporter(lake_prefix="").table_uri(TRANSACTIONS)
        == "s3://lakehouse/bronze/finance/transactions"
    )
    assert (
        _exporter(lake_prefix="/tests/run1/").table_uri(CLAIMS)
        == "s3://lakehouse/tests/run1/bronze/insurance/claims"
    )


def test_app_id_is_unique_per_outbox_and_entity() -> None:
    ids = {
        _exporter(db_schema=schema).app_id(entity)
        for schema in ("ingest", "other")
        for entity in (TRANSACTIONS, CLAIMS)
    }
    assert len(ids) == 4


def test_kafka_bronze_rows_fill_the_bronze_schema_with_the_records() -> None:
    records = [transaction(transaction_id="T-1"), transaction(transaction_id="T-2")]
    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)

    table = pa.Table.from_pylist(
        kafka_bronze_rows(records, key_field="transaction_id", topic=TRANSACTIONS.topic, at=at),
        schema=bronze_arrow_schema(),
    )

    rows = table.to_pylist()
    assert [row["record_key"] for row in rows] == ["T-1", "T-2"]
    assert [json.loads(row["payload"]) for row in rows] == records
    assert {(row["kafka_topic"], row["ingest_date"], row["source_offset"]) for row in rows} == {
        (TRANSACTIONS.topic, date(2026, 1, 2), None)
    }
    assert len({row["ingest_id"] for row in rows}) == 2
