"""The bronze layer's columns, shared by the starter lake exporter (delta-rs) and the Spark
landing job, so both write the same layout to `bronze/<domain>/<entity>`.

Types are named in Delta's own vocabulary; the exporter maps them to Arrow and the landing
job to Spark. `ingest_date` (the UTC date of `ingested_at`) is the partition column.
"""

from __future__ import annotations

from typing import Literal

DeltaType = Literal["string", "integer", "long", "timestamp", "date"]

#: (name, Delta type, nullable, description)
BRONZE_COLUMNS: tuple[tuple[str, DeltaType, bool, str], ...] = (
    ("ingest_id", "string", False, "id the ingestor gave the record (its receipt)"),
    ("record_key", "string", False, "natural key: transaction_id / claim_id"),
    ("payload", "string", False, "the record as JSON, exactly as accepted by the ingestor"),
    ("source", "string", False, "'kafka' (intermediate/advanced) or 'outbox' (starter)"),
    ("kafka_topic", "string", True, "topic the record was read from"),
    ("kafka_partition", "integer", True, "partition the record was read from"),
    ("kafka_offset", "long", True, "offset the record was read from"),
    ("outbox_id", "long", True, "id of the Postgres outbox row (starter)"),
    ("ingested_at", "timestamp", False, "when the ingestor acknowledged the record (UTC)"),
    ("landed_at", "timestamp", False, "when the record was written to bronze (UTC)"),
    ("ingest_date", "date", False, "UTC date of ingested_at; the partition column"),
)

BRONZE_PARTITION_COLUMNS: tuple[str, ...] = ("ingest_date",)

#: Kafka message headers the ingestor sets on every record.
HEADER_INGEST_ID = "ingest_id"
HEADER_TRACEPARENT = "traceparent"
HEADER_CONTENT_TYPE = "content-type"
