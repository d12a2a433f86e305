"""In-memory store and publisher: the ingestor without any outside system, for unit tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dataplatform.contracts import ENTITIES
from dataplatform.contracts.bronze import HEADER_KEY_ID, HEADER_TOPIC_ID, HEADER_TRACEPARENT
from dataplatform.db.apikeys import PREFIX, hash_secret
from dataplatform.ingest_ids import KafkaPlace, OutboxPlace
from fastapi_app.app.core.publisher import SinkUnavailable
from fastapi_app.app.core.store import (
    Candidate,
    IdempotencyClaim,
    Placement,
    Receipt,
    SinkName,
    StoredApiKey,
    Whereabouts,
    entity_label,
)


def memory_topic_id(topic: str) -> str:
    """The "topic id" of the memory publisher's topic `topic`."""
    return "mem-" + topic.replace(".", "-")


class MemoryStore:
    """`IngestStore` in dictionaries."""

    def __init__(self) -> None:
        """Empty store."""
        #: (principal, key) -> (route, request fingerprint, receipts once complete)
        self.idempotency_keys: dict[tuple[str, str], tuple[str, bytes, tuple[Receipt, ...] | None]]
        self.idempotency_keys = {}
        self.api_keys: dict[str, StoredApiKey] = {}
        #: What `whereabouts` answers, by ingest id (tests set it).
        self.known: dict[str, Whereabouts] = {}
        #: `(topic id, partition, offset)` of the records that landed or were restored (tests
        #: add them); `vanished` counts every other record of a recreated topic as gone.
        self.kept: set[tuple[str, int, int]] = set()
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

    async def whereabouts(self, place: KafkaPlace | OutboxPlace, ingest_id: str) -> Whereabouts:
        """What `known` says of `ingest_id` (nothing after the sink, by default)."""
        self._check()
        return self.known.get(ingest_id, Whereabouts())

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
        self, *, principal: str, key: str, receipts: list[Receipt]
    ) -> None:
        """Keep the receipts of the request."""
        self._check()
        route, sha, _ = self.idempotency_keys[(principal, key)]
        self.idempotency_keys[(principal, key)] = (route, sha, tuple(receipts))

    async def release_idempotency_key(self, *, principal: str, key: str) -> None:
        """Forget an in-progress binding."""
        self._check()
        bound = self.idempotency_keys.get((principal, key))
        if bound is not None and bound[2] is None:
            del self.idempotency_keys[(principal, key)]

    async def reopen_idempotency_key(self, *, principal: str, key: str) -> bool:
        """Put a complete binding back in progress (`complete` stores its receipts again)."""
        self._check()
        bound = self.idempotency_keys.get((principal, key))
        if bound is None or bound[2] is None:
            return False
        self.idempotency_keys[(principal, key)] = (*bound[:2], None)
        return True

    async def vanished(self, places: list[KafkaPlace]) -> list[bool]:
        """Gone unless in `kept`."""
        self._check()
        return [(p.topic_id, p.partition, p.offset) not in self.kept for p in places]

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
    #: Topic -> its id, where a test recreated it (`memory_topic_id` otherwise).
    topic_ids: dict[str, str] = field(default_factory=dict)

    def _topic_id(self, topic: str) -> str:
        return self.topic_ids.get(topic) or memory_topic_id(topic)

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to flush."""

    async def ping(self) -> None:
        """Raise when switched off."""
        if not self.available:
            raise SinkUnavailable("memory sink switched off")

    def entity_of(self, topic_id: str) -> str | None:
        """See `Publisher.entity_of`."""
        for entity in ENTITIES:
            if self._topic_id(entity.topic) == topic_id:
                return entity_label(entity)
        return None

    async def current_topic_id(self, topic: str) -> str | None:
        """See `Publisher.current_topic_id`."""
        return self._topic_id(topic)

    async def publish(
        self, records: list[Candidate], *, key_id: str, traceparent: str
    ) -> list[Placement]:
        """Append every record, as Kafka would, with its headers (one partition)."""
        await self.ping()
        now = datetime.now(UTC)
        placements = []
        for cand in records:
            message = PublishedMessage(
                topic=cand.entity.topic,
                key=cand.record_key,
                value=cand.payload,
                headers={
                    HEADER_KEY_ID: key_id,
                    HEADER_TOPIC_ID: self._topic_id(cand.entity.topic),
                    HEADER_TRACEPARENT: traceparent,
                },
                offset=len(self.messages),
            )
            self.messages.append(message)
            place = KafkaPlace(
                self._topic_id(message.topic), 0, message.offset, int(now.timestamp() * 1000)
            )
            placements.append(Placement(place, now, message.topic))
        return placements
