"""Ingest ids: a record's receipt, derived from where the sink put it, signed by the platform.

An ingest id names the record's place in the sink and the API key that sent it, with an HMAC
(SHA-256, the platform's `RECEIPT_SECRET`) over both, so the ingestor needs no database row to
give one out, and `GET /ingest/{id}` refuses a forged id or another key's id without a lookup:

* Kafka track: `k1.<topic id>.<partition>.<offset>.<timestamp ms>.<mac>`. The topic id is
  Kafka's (it changes when a topic is recreated, so a new topic's offsets never name an old
  topic's records); the timestamp is the message's, set when the producer accepted it.
* Starter track: `o1.<outbox row id>.<mac>`.

The mac is the first 32 hex digits (128 bits) of the HMAC of the id's text before it, followed
by `.` and the API key's id. Landing computes the same id for each bronze row from the Kafka
coordinates and headers (`pyspark_jobs.transforms`), and the lake exporter from the outbox row,
so the receipt and the bronze row carry one id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

KAFKA_PREFIX = "k1"
OUTBOX_PREFIX = "o1"
#: Hex digits of the HMAC kept in an id.
MAC_HEX_DIGITS = 32
#: The longest id either form can have (a 22-character topic id, int32 partition, int64 offset
#: and timestamp): what the API accepts as a path parameter.
MAX_ID_LENGTH = 120

_KAFKA = re.compile(
    rf"^{KAFKA_PREFIX}\.([A-Za-z0-9_-]{{1,32}})\.(0|[1-9][0-9]{{0,9}})\.(0|[1-9][0-9]{{0,18}})"
    rf"\.(0|[1-9][0-9]{{0,15}})\.([0-9a-f]{{{MAC_HEX_DIGITS}}})$"
)
_OUTBOX = re.compile(rf"^{OUTBOX_PREFIX}\.([1-9][0-9]{{0,18}})\.([0-9a-f]{{{MAC_HEX_DIGITS}}})$")


@dataclass(frozen=True, slots=True)
class KafkaPlace:
    """Where a Kafka-track record is: its topic generation, partition, offset and timestamp."""

    topic_id: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OutboxPlace:
    """Where a starter-track record is: its outbox row."""

    outbox_id: int


#: Kafka prints topic ids in standard base64 (`+`, `/`); ids use the URL-safe alphabet, so they
#: fit in a URL path as they are.
TOPIC_ID_TRANSLATION = str.maketrans("+/", "-_")


def url_safe_topic_id(topic_id: str) -> str:
    """A Kafka topic id as ingest ids and landing's progress name it (URL-safe base64)."""
    return topic_id.translate(TOPIC_ID_TRANSLATION)


def kafka_body(topic_id: str, partition: int, offset: int, timestamp_ms: int) -> str:
    """The text of a Kafka-track id before its mac."""
    return f"{KAFKA_PREFIX}.{url_safe_topic_id(topic_id)}.{partition}.{offset}.{timestamp_ms}"


def well_formed(ingest_id: str) -> bool:
    """Whether `ingest_id` has the shape of an ingest id (whoever signed it)."""
    return len(ingest_id) <= MAX_ID_LENGTH and bool(
        _KAFKA.match(ingest_id) or _OUTBOX.match(ingest_id)
    )


class IngestIds:
    """Makes and checks ingest ids with the platform's secret."""

    def __init__(self, secret: bytes) -> None:
        """Keep the HMAC keyed once: each id then costs a copy and two short hashes."""
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def mac(self, body: str, key_id: str) -> str:
        """The mac of an id whose text before the mac is `body`, for the API key `key_id`."""
        keyed = self._keyed.copy()
        keyed.update(f"{body}.{key_id}".encode())
        return keyed.hexdigest()[:MAC_HEX_DIGITS]

    def kafka(
        self, topic_id: str, partition: int, offset: int, timestamp_ms: int, key_id: str
    ) -> str:
        """The id of a record Kafka acknowledged at these coordinates, sent with `key_id`."""
        body = kafka_body(topic_id, partition, offset, timestamp_ms)
        return f"{body}.{self.mac(body, key_id)}"

    def outbox(self, outbox_id: int, key_id: str) -> str:
        """The id of outbox row `outbox_id`, sent with `key_id`."""
        body = f"{OUTBOX_PREFIX}.{outbox_id}"
        return f"{body}.{self.mac(body, key_id)}"

    def place(self, ingest_id: str, key_id: str) -> KafkaPlace | OutboxPlace | None:
        """Where the record of `ingest_id` is, if the id is well formed and `key_id` sent it.

        None for anything else: malformed, forged, or another key's id (indistinguishable, so
        an id says nothing to a key that did not send it).
        """
        if len(ingest_id) > MAX_ID_LENGTH:
            return None
        found = _KAFKA.match(ingest_id)
        if found is not None:
            place: KafkaPlace | OutboxPlace = KafkaPlace(
                found[1], int(found[2]), int(found[3]), int(found[4])
            )
            given = found[5]
        else:
            found = _OUTBOX.match(ingest_id)
            if found is None:
                return None
            place, given = OutboxPlace(int(found[1])), found[2]
        body = ingest_id[: -(MAC_HEX_DIGITS + 1)]
        return place if hmac.compare_digest(given, self.mac(body, key_id)) else None
