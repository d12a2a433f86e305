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
        "status": receipt.status,
        "duplicate": duplicate,
        "received_at": receipt.received_at,
        "durable_at": receipt.durable_at,
        "destination": destination_dict(receipt),
    }


def destination_dict(receipt: Receipt) -> dict[str, Any] | None:
    """`Destination` as a dict; None until the sink acknowledged."""
    if receipt.status != "durable":
        return None
    return {
        "sink": receipt.sink,
        "topic": receipt.kafka_topic,
        "partition": receipt.kafka_partition,
        "offset": receipt.kafka_offset,
        "table": "outbox" if receipt.outbox_id is not None else None,
        "outbox_id": receipt.outbox_id,
    }
