"""The lake exporter's bronze layout: exactly `BRONZE_COLUMNS`, its table URIs and app ids."""

from __future__ import annotations

import pyarrow as pa

from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.contracts.bronze import BRONZE_COLUMNS
from dataplatform.exporter import LakeExporter, bronze_arrow_schema
from dataplatform.lake import Lake
from dataplatform.settings import ExporterSettings, PostgresSettings, S3Settings


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
