"""The receipt store: receipts, idempotency keys and API keys (Postgres in every track).

Records go through it before the sink (`reserve`) and after (`mark_durable`), so
`GET /ingest/{ingest_id}` can say where a record is, and an `Idempotency-Key` replay finds the
receipts of the request it repeats. Every accepted record gets a receipt of its own: the edge
does not deduplicate by content (a resend is a further version of the same key downstream).
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
            re-serialised model, so values are exactly what the client sent (decimals with
            their digits, `dataplatform.contracts.exactjson`).
        payload_sha256: SHA-256 of `payload`, part of the request's fingerprint.
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
    #: The API key that sent the record: only it may read the receipt.
    principal: str
    #: Starter track: when the lake exporter wrote the row to bronze, and the Delta version.
    landed_at: datetime | None = None
    delta_version: int | None = None


IdempotencyState = Literal["claimed", "replay", "conflict", "in_progress"]


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """What an `Idempotency-Key` means for a request.

    `claimed`: the key is now bound to this request (`in_progress`) and it must run;
    `replay`: the same request completed before, `ingest_ids` are its receipts in order;
    `conflict`: the key is bound to a different request; `in_progress`: the same request is
    still running under the key.
    """

    state: IdempotencyState
    ingest_ids: tuple[UUID, ...] = ()


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
        """Return a new receipt (`created`) for every candidate, in order."""

    async def mark_durable(self, receipts: list[Receipt]) -> None:
        """Record that the sink acknowledged these records (and where they are)."""

    async def get_receipt(self, ingest_id: UUID) -> ReceiptView | None:
        """The receipt of `ingest_id`, or None."""

    async def get_receipts(self, ingest_ids: tuple[UUID, ...]) -> list[Receipt]:
        """The receipts of `ingest_ids`, in that order (`created` False)."""

    async def claim_idempotency_key(
        self, *, principal: str, key: str, route: str, request_sha256: bytes
    ) -> IdempotencyClaim:
        """Bind `key` to this request unless it is bound (and not expired) already.

        A completed binding expires after `INGESTOR_IDEMPOTENCY_TTL_H`, one left
        `in_progress` (a crash between publishing and completing) after twice the sink timeout.
        """

    async def complete_idempotency_key(
        self, *, principal: str, key: str, ingest_ids: list[UUID]
    ) -> None:
        """Mark the binding complete with the request's receipts, in order."""

    async def release_idempotency_key(self, *, principal: str, key: str) -> None:
        """Delete an `in_progress` binding: the request failed, the key is free again."""

    async def list_api_keys(self) -> list[StoredApiKey]:
        """Every API key, revoked ones included."""
