"""Receipts as the API answers them: `IngestReceipt` and `Destination` bodies (orjson dicts)."""

from __future__ import annotations

from typing import Any

from fastapi_app.app.core.store import Receipt


def receipt_dict(receipt: Receipt, *, duplicate: bool) -> dict[str, Any]:
    """`IngestReceipt` as a dict (serialised by orjson)."""
    return {
        "ingest_id": receipt.ingest_id,
        "entity": receipt.entity,
        "record_key": receipt.record_key,
        "status": "durable",
        "duplicate": duplicate,
        "received_at": receipt.received_at,
        "durable_at": receipt.durable_at,
        "destination": destination_dict(
            receipt.sink,
            topic=receipt.kafka_topic,
            partition=receipt.kafka_partition,
            offset=receipt.kafka_offset,
            outbox_id=receipt.outbox_id,
        ),
    }


def destination_dict(
    sink: str,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    outbox_id: int | None = None,
) -> dict[str, Any]:
    """`Destination` as a dict."""
    return {
        "sink": sink,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "table": "outbox" if outbox_id is not None else None,
        "outbox_id": outbox_id,
    }
