"""The receipt store: receipts, idempotency keys and API keys (Postgres in every track).

Records go through it before the sink (`reserve`) and after (`mark_durable`), so a retry finds
the original receipt, and `GET /ingest/{ingest_id}` can say where a record is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from dataplatform.contracts import Entity

SinkName = Literal["postgres", "kafka", "memory"]
ReceiptStatus = Literal["accepted", "durable"]


def entity_label(entity: Entity) -> str:
    """`<domain>.<entity>`, the entity's name in receipts and metrics."""
    return f"{entity.domain}.{entity.name}"


@dataclass(slots=True)
class Candidate:
    """A valid record on its way to the sink.

    Attributes:
        entity: Its contract and topic/table names.
        record_key: The natural key (`transaction_id`, `claim_id`).
        payload: The record as compact JSON with sorted keys: the parsed input, not a
            re-serialised model, so values are exactly what the client sent.
        payload_sha256: SHA-256 of `payload`; with the key it identifies a record version.
    """

    entity: Entity
    record_key: str
    payload: bytes
    payload_sha256: bytes


@dataclass(slots=True)
class Receipt:
    """Where one record version is: the answer to the client and the row in `receipts`."""

    ingest_id: UUID
    entity: str
    record_key: str
    status: ReceiptStatus
    sink: str
    received_at: datetime
    #: True when this request reserved the record; False for a retry/duplicate.
    created: bool
    durable_at: datetime | None = None
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    outbox_id: int | None = None


@dataclass(slots=True)
class ReceiptView:
    """A receipt as `GET /ingest/{ingest_id}` shows it, with the later stages known so far."""

    receipt: Receipt
    #: Starter track: when the lake exporter wrote the row to bronze, and the Delta version.
    landed_at: datetime | None = None
    delta_version: int | None = None


@dataclass(frozen=True, slots=True)
class StoredApiKey:
    """What the store knows of an API key."""

    key_id: str
    secret_sha256: bytes
    rate_limit_per_s: float | None
    revoked: bool


class IngestStore(Protocol):
    """Receipts, idempotency keys and API keys."""

    async def start(self) -> None:
        """Connect."""

    async def close(self) -> None:
        """Disconnect."""

    async def ping(self) -> None:
        """Raise unless the store answers."""

    async def reserve(
        self, candidates: list[Candidate], *, principal: str, sink: SinkName
    ) -> list[Receipt]:
        """Return each candidate's receipt: a new one (`created`) or the one of the same
        record version (same entity, key and payload hash) reserved before."""

    async def mark_durable(self, receipts: list[Receipt]) -> None:
        """Record that the sink acknowledged these records (and where they are)."""

    async def get_receipt(self, ingest_id: UUID) -> ReceiptView | None:
        """The receipt of `ingest_id`, or None."""

    async def claim_idempotency_key(
        self, *, principal: str, key: str, route: str, request_sha256: bytes
    ) -> bool:
        """Bind `key` to this request; False when it is already bound to a different one."""

    async def find_api_key(self, key_id: str) -> StoredApiKey | None:
        """The API key with this public id, or None."""
