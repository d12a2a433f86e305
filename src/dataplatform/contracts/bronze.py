"""The bronze layer's columns, shared by the starter lake exporter (delta-rs) and the Spark
landing job, so both write the same layout to `bronze/<domain>/<entity>`.

Types are named in Delta's own vocabulary; the exporter maps them to Arrow and the landing
job to Spark. `ingest_date` (the UTC date of `ingested_at`) is the partition column.

`(source_epoch, source_offset)` is the order token: the order in which the platform accepted
the versions of one record key. Curation keeps, per key, the greatest (event time, token). The
Kafka offset orders the versions of a key (the key is the partition key, so they share a
partition); the outbox id orders them in the starter track (rows inserted in request order).
The epoch goes up when the source changes, so offsets of a recreated topic or of Kafka after the
starter's outbox still sort after everything accepted before: 0 is the starter's outbox, 1 and
up are the Kafka topic ids landing has seen, in order. Rows written before the token existed
have nulls, which sort oldest. The columns come last, so tables from before them are evolved by
appending two nullable columns.

`trace_id` follows one record from its HTTP request to the table: the 32 hex digits of the W3C
`traceparent` header the ingestor puts on every Kafka message (the trace of its server and
Kafka produce spans). It is null for messages without a valid header and in the starter track,
whose outbox does not keep the trace context. It was added last, nullable, for the same reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

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
    ("source_epoch", "long", True, "order token, part 1: 0 outbox, 1+ Kafka topic generation"),
    ("source_offset", "long", True, "order token, part 2: Kafka offset or outbox id"),
    (
        "trace_id",
        "string",
        True,
        "W3C trace id of the request that sent the record (Kafka `traceparent` header)",
    ),
)

BRONZE_PARTITION_COLUMNS: tuple[str, ...] = ("ingest_date",)

#: Kafka message headers the ingestor sets on every record: the id of the API key that sent it
#: and the topic id the ingestor produced to, from which landing computes the record's ingest id
#: (`dataplatform.ingest_ids`).
HEADER_KEY_ID = "api_key_id"
HEADER_TOPIC_ID = "topic_id"
#: The ingest id of a record put back on a topic (`dataplatform lake replay`, a Kafka restore):
#: it keeps the id its receipt named.
HEADER_INGEST_ID = "ingest_id"
HEADER_TRACEPARENT = "traceparent"
HEADER_CONTENT_TYPE = "content-type"
#: Set by `dataplatform lake replay`: the order token the record had when it was quarantined,
#: so a replayed version keeps its place among the versions of its key.
HEADER_SOURCE_EPOCH = "source_epoch"
HEADER_SOURCE_OFFSET = "source_offset"

#: The epoch of the starter track's outbox rows; Kafka topics get 1 and up.
OUTBOX_EPOCH = 0


def kafka_bronze_rows(
    records: Iterable[dict[str, Any]], *, key_field: str, topic: str, at: datetime
) -> list[dict[str, Any]]:
    """`records` as bronze rows read from Kafka topic `topic` and landed at `at` (UTC), with
    no partition offset or order token: how tests and benchmarks put data into bronze without
    Spark or Kafka (columns left out are null).

    Args:
        records: Records as the ingestor accepted them.
        key_field: The record key (`transaction_id`, `claim_id`).
        topic: The topic recorded as their source.
        at: Their ingest and landing time, aware UTC.
    """
    return [
        {
            "ingest_id": str(uuid.uuid4()),
            "record_key": record[key_field],
            "payload": json.dumps(record),
            "source": "kafka",
            "kafka_topic": topic,
            "kafka_partition": 0,
            "ingested_at": at,
            "landed_at": at,
            "ingest_date": at.date(),
        }
        for record in records
    ]
