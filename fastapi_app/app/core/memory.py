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
        self._versions: dict[tuple[str, str, bytes], UUID] = {}
        self.idempotency_keys: dict[tuple[str, str], tuple[str, bytes]] = {}
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
        """New receipts for new record versions, the stored ones for repeats."""
        self._check()
        out = []
        for cand in candidates:
            version = (entity_label(cand.entity), cand.record_key, cand.payload_sha256)
            existing = self._versions.get(version)
            if existing is not None:
                out.append(replace(self.receipts[existing], created=False))
                continue
            receipt = Receipt(
                ingest_id=uuid.uuid4(),
                entity=version[0],
                record_key=cand.record_key,
                status="accepted",
                sink=sink,
                received_at=datetime.now(UTC),
                created=True,
            )
            self.receipts[receipt.ingest_id] = receipt
            self._versions[version] = receipt.ingest_id
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
        return ReceiptView(replace(receipt, created=False)) if receipt else None

    async def claim_idempotency_key(
        self, *, principal: str, key: str, route: str, request_sha256: bytes
    ) -> bool:
        """Bind the key on first use; compare afterwards."""
        self._check()
        bound = self.idempotency_keys.setdefault((principal, key), (route, request_sha256))
        return bound == (route, request_sha256)

    async def find_api_key(self, key_id: str) -> StoredApiKey | None:
        """Look the key up."""
        self._check()
        return self.api_keys.get(key_id)


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
