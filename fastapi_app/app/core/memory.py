"""In-memory store and publisher: the ingestor without any outside system, for unit tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID

from dataplatform.db.apikeys import PREFIX, hash_secret
from fastapi_app.app.core.publisher import SinkUnavailable
from fastapi_app.app.core.store import (
    Candidate,
    IdempotencyClaim,
    Receipt,
    ReceiptView,
    SinkName,
    StoredApiKey,
    entity_label,
)


class MemoryStore:
    """`IngestStore` in dictionaries."""

    def __init__(self) -> None:
        """Empty store."""
        self.receipts: dict[UUID, Receipt] = {}
        self.principals: dict[UUID, str] = {}
        #: (principal, key) -> (route, request fingerprint, receipts once complete)
        self.idempotency_keys: dict[tuple[str, str], tuple[str, bytes, tuple[UUID, ...] | None]]
        self.idempotency_keys = {}
        self.api_keys: dict[str, StoredApiKey] = {}
        self.available = True

    def add_api_key(self, *, rate_limit_per_s: float | None = None) -> str:
        """Create an API key and return it in full."""
        key_id = uuid.uuid4().hex[:12]
        secret = uuid.uuid4().hex
        self.api_keys[key_id] = StoredApiKey(
            key_id, hash_secret(secret), rate_limit_per_s, revoked=False
        )
        return f"{PREFIX}_{key_id}_{secret}"

    def _check(self) -> None:
        if not self.available:
            raise ConnectionError("memory store switched off")

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def ping(self) -> None:
        """Raise when switched off."""
        self._check()

    async def reserve(
        self, candidates: list[Candidate], *, principal: str, sink: SinkName
    ) -> list[Receipt]:
        """A new receipt for every candidate."""
        self._check()
        out = []
        for cand in candidates:
            receipt = Receipt(
                ingest_id=uuid.uuid4(),
                entity=entity_label(cand.entity),
                record_key=cand.record_key,
                status="accepted",
                sink=sink,
                received_at=datetime.now(UTC),
                created=True,
            )
            self.receipts[receipt.ingest_id] = receipt
            self.principals[receipt.ingest_id] = principal
            out.append(replace(receipt))
        return out

    async def mark_durable(self, receipts: list[Receipt]) -> None:
        """Store the acknowledged state."""
        self._check()
        for receipt in receipts:
            self.receipts[receipt.ingest_id] = replace(receipt, created=False)

    async def get_receipt(self, ingest_id: UUID) -> ReceiptView | None:
        """The stored receipt."""
        self._check()
        receipt = self.receipts.get(ingest_id)
        if receipt is None:
            return None
        return ReceiptView(replace(receipt, created=False), principal=self.principals[ingest_id])

    async def get_receipts(self, ingest_ids: tuple[UUID, ...]) -> list[Receipt]:
        """The stored receipts, in order."""
        self._check()
        return [replace(self.receipts[i], created=False) for i in ingest_ids if i in self.receipts]

    async def claim_idempotency_key(
        self, *, principal: str, key: str, route: str, request_sha256: bytes
    ) -> IdempotencyClaim:
        """Bind the key on first use; compare afterwards (no expiry in memory)."""
        self._check()
        bound = self.idempotency_keys.get((principal, key))
        if bound is None:
            self.idempotency_keys[(principal, key)] = (route, request_sha256, None)
            return IdempotencyClaim("claimed")
        if bound[:2] != (route, request_sha256):
            return IdempotencyClaim("conflict")
        if bound[2] is None:
            return IdempotencyClaim("in_progress")
        return IdempotencyClaim("replay", bound[2])

    async def complete_idempotency_key(
        self, *, principal: str, key: str, ingest_ids: list[UUID]
    ) -> None:
        """Keep the receipts of the request."""
        self._check()
        route, sha, _ = self.idempotency_keys[(principal, key)]
        self.idempotency_keys[(principal, key)] = (route, sha, tuple(ingest_ids))

    async def release_idempotency_key(self, *, principal: str, key: str) -> None:
        """Forget an in-progress binding."""
        self._check()
        bound = self.idempotency_keys.get((principal, key))
        if bound is not None and bound[2] is None:
            del self.idempotency_keys[(principal, key)]

    async def list_api_keys(self) -> list[StoredApiKey]:
        """Every key."""
        self._check()
        return list(self.api_keys.values())


@dataclass
class PublishedMessage:
    """One record as the memory publisher received it."""

    topic: str
    key: str
    value: bytes
    headers: dict[str, str]
    offset: int


@dataclass
class MemoryPublisher:
    """`Publisher` that appends to a list; `available = False` makes it fail like a dead sink."""

    sink: SinkName = "memory"
    messages: list[PublishedMessage] = field(default_factory=list)
    available: bool = True

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to flush."""

    async def ping(self) -> None:
        """Raise when switched off."""
        if not self.available:
            raise SinkUnavailable("memory sink switched off")

    async def publish(self, records: list[tuple[Candidate, Receipt]], *, traceparent: str) -> None:
        """Append every record, as Kafka would, with its headers."""
        await self.ping()
        now = datetime.now(UTC)
        for cand, receipt in records:
            message = PublishedMessage(
                topic=cand.entity.topic,
                key=cand.record_key,
                value=cand.payload,
                headers={"ingest_id": str(receipt.ingest_id), "traceparent": traceparent},
                offset=len(self.messages),
            )
            self.messages.append(message)
            receipt.status = "durable"
            receipt.durable_at = now
            receipt.sink = self.sink
            receipt.kafka_topic = message.topic
            receipt.kafka_partition = 0
            receipt.kafka_offset = message.offset
