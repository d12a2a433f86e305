"""The ingest store: idempotency keys, API keys and where records are (Postgres in every track).

No row is written per record on the Kafka track: a record's receipt is its ingest id
(`dataplatform.ingest_ids`), derived from the sink's acknowledgement. Where a record is later
comes from the progress landing writes per micro-batch (`landing_progress`, `quarantined_records`)
and, on the starter track, from the record's outbox row; whether it is curated, from the bronze
version curation reports it processed (`curation_progress`), unless curation quarantined it
(`quarantined_records`, job `curation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from dataplatform.contracts import Entity
from dataplatform.ingest_ids import KafkaPlace, OutboxPlace

SinkName = Literal["postgres", "kafka", "memory"]

#: The job that quarantined a record.
QuarantiningJob = Literal["landing", "curation"]


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


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the sink put one record, and when it acknowledged it."""

    place: KafkaPlace | OutboxPlace
    durable_at: datetime
    #: The Kafka topic (None for the outbox).
    topic: str | None = None


@dataclass(slots=True)
class Receipt:
    """One accepted record version, as the ingest answer describes it."""

    ingest_id: str
    entity: str
    record_key: str
    sink: str
    received_at: datetime
    durable_at: datetime
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    outbox_id: int | None = None


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """What the store knows of a record after the sink: `GET /ingest/{id}`'s later stages.

    Attributes:
        entity: `<domain>.<entity>`, when known (always on the starter track; on the Kafka
            track once landing reported the topic).
        record_key: The natural key (starter track, while the outbox row is kept).
        received_at: When the outbox row was committed (starter track).
        landed_at: When the record reached bronze or quarantine.
        bronze_table: The bronze table's `s3://` URI, when its progress names it.
        bronze_version: The bronze Delta version that holds it (on Kafka tracks, possibly a
            later one: landing reports its latest append).
        quarantine_reason: Why landing or curation refused it, when one did.
        quarantined_by: Which of the two refused it (set with `quarantine_reason`).
        details_expired: The outbox row was pruned after landing: only `landed` is known.
        curated_at: When a curation run first processed its bronze version (never for a
            record landing quarantined; for one curation quarantined, when it was recorded).
    """

    entity: str | None = None
    record_key: str | None = None
    received_at: datetime | None = None
    landed_at: datetime | None = None
    bronze_table: str | None = None
    bronze_version: int | None = None
    quarantine_reason: str | None = None
    quarantined_by: QuarantiningJob | None = None
    details_expired: bool = False
    curated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyBinding:
    """An `Idempotency-Key` bound `in_progress` to the request now publishing."""

    principal: str
    key: str


IdempotencyState = Literal["claimed", "replay", "conflict", "in_progress"]


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """What an `Idempotency-Key` means for a request.

    `claimed`: the key is now bound to this request (`in_progress`) and it must run;
    `replay`: the same request completed before, `receipts` are its receipts in order (as
    `receipt_to_json` stored them); `conflict`: the key is bound to a different request;
    `in_progress`: the same request is still running under the key.
    """

    state: IdempotencyState
    receipts: tuple[Receipt, ...] = ()


def receipt_to_json(receipt: Receipt) -> dict[str, Any]:
    """A receipt as the idempotency binding keeps it (JSON types)."""
    return {
        "i": receipt.ingest_id,
        "e": receipt.entity,
        "k": receipt.record_key,
        "s": receipt.sink,
        "r": receipt.received_at.isoformat(),
        "d": receipt.durable_at.isoformat(),
        "t": receipt.kafka_topic,
        "p": receipt.kafka_partition,
        "o": receipt.kafka_offset,
        "b": receipt.outbox_id,
    }


def receipt_from_json(data: dict[str, Any]) -> Receipt:
    """The receipt `receipt_to_json` stored."""
    return Receipt(
        ingest_id=data["i"],
        entity=data["e"],
        record_key=data["k"],
        sink=data["s"],
        received_at=datetime.fromisoformat(data["r"]),
        durable_at=datetime.fromisoformat(data["d"]),
        kafka_topic=data["t"],
        kafka_partition=data["p"],
        kafka_offset=data["o"],
        outbox_id=data["b"],
    )


@dataclass(frozen=True, slots=True)
class StoredApiKey:
    """What the store knows of an API key."""

    key_id: str
    secret_sha256: bytes
    rate_limit_per_s: float | None
    revoked: bool


class IngestStore(Protocol):
    """Idempotency keys, API keys and the progress of records after the sink."""

    async def start(self) -> None:
        """Connect."""

    async def close(self) -> None:
        """Disconnect."""

    async def ping(self) -> None:
        """Raise unless the store answers."""

    async def whereabouts(self, place: KafkaPlace | OutboxPlace, ingest_id: str) -> Whereabouts:
        """What is known of the record at `place` (id `ingest_id`) after the sink."""

    async def claim_idempotency_key(
        self, *, principal: str, key: str, route: str, request_sha256: bytes
    ) -> IdempotencyClaim:
        """Bind `key` to this request unless it is bound (and not expired) already.

        A completed binding expires after `INGESTOR_IDEMPOTENCY_TTL_H`, one left
        `in_progress` (a crash between publishing and completing) after twice the sink timeout.
        """

    async def complete_idempotency_key(
        self, *, principal: str, key: str, receipts: list[Receipt]
    ) -> None:
        """Mark the binding complete with the request's receipts, in order."""

    async def release_idempotency_key(self, *, principal: str, key: str) -> None:
        """Delete an `in_progress` binding: the request failed, the key is free again."""

    async def reopen_idempotency_key(self, *, principal: str, key: str) -> bool:
        """Put a complete binding back `in_progress` (its receipts kept) to publish again
        records its topic lost; False when it is not complete (another request did first)."""

    async def vanished(self, places: list[KafkaPlace]) -> list[bool]:
        """For each place in a topic that was since recreated, whether its record is gone:
        landing had not reached it and no Kafka restore brought it back."""

    async def list_api_keys(self) -> list[StoredApiKey]:
        """Every API key, revoked ones included."""
