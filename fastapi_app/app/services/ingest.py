"""Parse, validate and ingest records: the path every ingest endpoint shares.

Bodies are decoded once with the exact decoder of the contracts (`exactjson`: numbers from
their text as decimals, repeated keys refused) and validated with the contract in Python mode.
What goes to the sink is the decoded input re-emitted as compact JSON with sorted keys: the
record exactly as the client sent it, digits included (no model re-serialisation), and the
canonical form the request's fingerprint is taken over, so whitespace or key order never make
an `Idempotency-Key` retry look like a different request.

Deduplication at the edge is by `Idempotency-Key` only: without one, every accepted record is
published, and a resend is a further version of its key downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from dataplatform.contracts import ENTITIES, Entity, exactjson
from dataplatform.ingest_ids import IngestIds, KafkaPlace, OutboxPlace
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.publisher import BindingPublisher, Publisher, SinkOverloaded
from fastapi_app.app.core.publisher import SinkUnavailable as SinkDown
from fastapi_app.app.core.security import Principal
from fastapi_app.app.core.store import (
    Candidate,
    IngestStore,
    KeyBinding,
    Placement,
    Receipt,
    Whereabouts,
    entity_label,
)
from fastapi_app.app.core.telemetry import INFLIGHT, RECORDS, SINK_ERRORS, current_trace
from fastapi_app.app.services.errors import (
    ErrorDict,
    IngestError,
    InvalidJson,
    KeyConflict,
    KeyInProgress,
    Overloaded,
    RecordRejected,
    SinkUnavailable,
    TooLarge,
    validation_details,
    validation_message,
)

log = logging.getLogger(__name__)

BatchFormat = Literal["json", "ndjson"]
#: Pause between the tries of an Idempotency-Key write that failed.
_RETRY_PAUSE_S = 0.5
#: How old a record must be before `GET /ingest/{id}` may call it lost: by then the topic ids of
#: every worker (read again every 10 s when used) know a topic recreated before it was sent, so
#: a record of the new topic is never taken for one of the old.
LOST_AFTER_S = 60.0
#: `<domain>.<entity>` -> its Kafka topic.
_TOPICS = {entity_label(entity): entity.topic for entity in ENTITIES}


@dataclass(slots=True)
class Parsed:
    """A request's records after parsing: valid ones by position, rejected ones with errors."""

    valid: list[tuple[int, Candidate]]
    rejected: list[tuple[int, list[ErrorDict]]]
    #: Fingerprint of the whole request, bound to an `Idempotency-Key`.
    request_sha256: bytes
    received: int


@dataclass(slots=True)
class Outcome:
    """Receipts of the valid records, in order, and which of them were repeats."""

    receipts: list[Receipt]
    duplicate: list[bool]


def _candidate(entity: Entity, obj: Any, payload: bytes, *, prefix: list[str | int]) -> Candidate:
    try:
        model = entity.model.model_validate(obj)
    except ValidationError as exc:
        raise _Rejected(validation_details(exc, prefix=prefix)) from None
    return Candidate(
        entity=entity,
        record_key=getattr(model, entity.key_field),
        payload=payload,
        payload_sha256=hashlib.sha256(payload).digest(),
    )


class _Rejected(Exception):
    def __init__(self, details: list[ErrorDict]) -> None:
        super().__init__(details)
        self.details = details


def _json_error(exc: exactjson.ExactJsonError, *, loc: list[str | int]) -> ErrorDict:
    if exc.kind == "duplicate_key":
        return {"loc": [*loc, str(exc.key)], "msg": str(exc), "type": "duplicate_key"}
    return {"loc": loc, "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}


def _decoded(text: bytes, *, loc: list[str | int]) -> tuple[Any, bytes]:
    """One record's JSON decoded exactly, and its canonical payload.

    Raises:
        _Rejected: Not valid JSON, or a repeated key.
    """
    try:
        obj = exactjson.loads(text)
        return obj, exactjson.dumps(obj)
    except exactjson.ExactJsonError as exc:
        raise _Rejected([_json_error(exc, loc=loc)]) from None


def parse_record(entity: Entity, body: bytes) -> Parsed:
    """Parse the body of a single-record endpoint.

    Raises:
        InvalidJson: The body is not valid JSON.
        RecordRejected: Naming every invalid field (a repeated key too).
    """
    title = entity.model.__name__
    try:
        obj = exactjson.loads(body)
        payload = exactjson.dumps(obj)
    except exactjson.ExactJsonError as exc:
        detail = [_json_error(exc, loc=["body"])]
        if exc.kind == "duplicate_key":
            raise RecordRejected(validation_message(detail, title=title), detail=detail) from None
        raise InvalidJson(f"request body is not valid JSON: {exc}", detail=detail) from None
    try:
        cand = _candidate(entity, obj, payload, prefix=["body"])
    except _Rejected as rejected:
        raise RecordRejected(
            validation_message(rejected.details, title=title), detail=rejected.details
        ) from None
    return Parsed([(0, cand)], [], cand.payload_sha256, 1)


def _ndjson_lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    index = 0
    for line in body.split(b"\n"):
        line = line.strip()
        if line:  # blank lines (and a trailing newline) are not records
            yield index, line
            index += 1


def _json_items(body: bytes) -> list[tuple[int, Any]]:
    try:
        array = exactjson.loads_array(body)
    except exactjson.ExactJsonError as exc:
        raise InvalidJson(
            f"request body is not valid JSON: {exc}", detail=[_json_error(exc, loc=["body"])]
        ) from None
    except TypeError:
        raise InvalidJson(
            "a JSON batch must be an array of records (or send NDJSON with "
            "Content-Type: application/x-ndjson)",
            detail=[{"loc": ["body"], "msg": "Input should be a valid array", "type": "list_type"}],
        ) from None
    return list(enumerate(array))


def parse_batch(
    entity: Entity, body: bytes, fmt: BatchFormat, settings: IngestorSettings
) -> Parsed:
    """Parse a batch body: a JSON array, or NDJSON (one record per line).

    Invalid records (bad JSON on an NDJSON line, a repeated key, a contract violation) are
    rejected one by one; the request fails as a whole only when its framing is broken or a
    limit is exceeded.

    Raises:
        InvalidJson: The array is not valid JSON, or not an array.
        TooLarge: Too many records, or a record too large.
        RecordRejected: No records.
    """
    items = _json_items(body) if fmt == "json" else list(_ndjson_lines(body))
    if len(items) > settings.max_batch_records:
        raise TooLarge(
            f"batch has {len(items)} records; "
            f"the limit is {settings.max_batch_records} per request",
            detail=[{"loc": ["body"], "msg": "too many records", "type": "batch_too_large"}],
        )
    if not items:
        raise RecordRejected(
            "1 validation error for batch: body: the batch holds no records",
            detail=[{"loc": ["body"], "msg": "the batch holds no records", "type": "too_short"}],
        )
    valid: list[tuple[int, Candidate]] = []
    rejected: list[tuple[int, list[ErrorDict]]] = []
    fingerprint = hashlib.sha256()
    limit = settings.max_record_bytes
    for index, item in items:
        loc: list[str | int] = ["body", index]
        try:
            if isinstance(item, bytes):  # an NDJSON line
                _check_record_size(len(item), index, limit)
                fingerprint_of = item
                obj, payload = _decoded(item, loc=loc)
            elif isinstance(item, exactjson.ExactJsonError):
                fingerprint_of = str(item).encode()
                raise _Rejected([_json_error(item, loc=loc)])
            else:
                fingerprint_of = repr(item).encode()  # until its canonical form is known
                obj, payload = _decoded_value(item, loc=loc)
                fingerprint_of = payload
                _check_record_size(len(payload), index, limit)
            cand = _candidate(entity, obj, payload, prefix=loc)
        except _Rejected as exc:
            rejected.append((index, exc.details))
            fingerprint.update(hashlib.sha256(fingerprint_of).digest())
            continue
        valid.append((index, cand))
        fingerprint.update(cand.payload_sha256)
    return Parsed(valid, rejected, fingerprint.digest(), len(items))


def _decoded_value(obj: Any, *, loc: list[str | int]) -> tuple[Any, bytes]:
    """An element of a decoded JSON array and its canonical payload."""
    try:
        return obj, exactjson.dumps(obj)
    except exactjson.ExactJsonError as exc:
        raise _Rejected([_json_error(exc, loc=loc)]) from None


def _check_record_size(size: int, index: int, limit: int) -> None:
    if size > limit:
        raise TooLarge(
            f"record {index} is {size} bytes; the limit is {limit} bytes per record",
            detail=[
                {"loc": ["body", index], "msg": "record too large", "type": "record_too_large"}
            ],
        )


@dataclass(frozen=True, slots=True)
class Located:
    """Where a record is: `GET /ingest/{id}`'s answer before it is written out."""

    ingest_id: str
    place: KafkaPlace | OutboxPlace
    #: What the store knows after the sink (its `entity` filled from the sink when unknown).
    later: Whereabouts
    #: Its topic was recreated before landing reached it, and no restore brought it back.
    lost: bool = False


class IngestService:
    """Publish to the sink, answer with signed receipts; shed load when full."""

    def __init__(
        self,
        settings: IngestorSettings,
        store: IngestStore,
        publisher: Publisher,
        ids: IngestIds,
    ) -> None:
        """Wire the service to its store, its sink and the ingest-id signer."""
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.ids = ids
        self._inflight = 0
        #: Idempotency-Key writes still running (kept referenced until done).
        self._background: set[asyncio.Task[None]] = set()

    def _unavailable(self, reason: str, message: str) -> SinkUnavailable:
        SINK_ERRORS.labels(self.publisher.sink, reason).inc()
        error = Overloaded if reason == "overloaded" else SinkUnavailable
        return error(
            message,
            detail=[{"loc": ["sink", self.publisher.sink], "msg": message, "type": reason}],
            retry_after_s=self.settings.retry_after_s,
        )

    def check_capacity(self) -> None:
        """Refuse (503) before the body is read and parsed when the in-flight bound is full.

        Parsing a 500-record batch costs milliseconds of CPU; spending it on requests that
        `ingest` would refuse anyway starved the admitted ones until they timed out too
        (measured: at 64 concurrent 500-record batches every request ended in a slow 503).
        """
        if self._inflight >= self.settings.max_inflight_records:
            raise self._unavailable(
                "overloaded", "the ingestor is at capacity; retry after the Retry-After delay"
            )

    async def ingest(
        self,
        entity: Entity,
        parsed: Parsed,
        *,
        principal: Principal,
        route: str,
        idempotency_key: str | None,
    ) -> Outcome:
        """Make the valid records of `parsed` durable, or replay an `Idempotency-Key`'s receipts.

        A request whose records were all rejected publishes nothing and leaves its key free;
        a failed one (4xx, 503) frees the key it claimed, so a corrected retry may use it.

        Raises:
            KeyConflict: The `Idempotency-Key` is bound to a different request
                (`KeyInProgress`: the same request is still running under it).
            SinkUnavailable: The sink or the store failed or timed out (`Overloaded`: too many
                records are in flight).
        """
        label = entity_label(entity)
        if parsed.rejected:
            RECORDS.labels(label, "rejected").inc(len(parsed.rejected))
        count = len(parsed.valid)
        if not count:
            return Outcome([], [])
        settings = self.settings
        if self._inflight + count > settings.max_inflight_records:
            raise self._unavailable(
                "overloaded", "the ingestor is at capacity; retry after the Retry-After delay"
            )
        self._inflight += count
        INFLIGHT.set(self._inflight)
        received_at = datetime.now(UTC)
        binding: KeyBinding | None = None
        #: A replay's receipts, when some of its records are gone and are published again.
        earlier: Outcome | None = None
        try:
            # A little longer than the sink's own timeout, so the sink's error normally wins.
            async with asyncio.timeout(settings.sink_timeout_s + 1):
                if idempotency_key is not None:
                    replay = await self._claim(parsed, principal, route, idempotency_key)
                    if replay is not None:
                        earlier = await self._reopen_if_lost(replay, principal, idempotency_key)
                        if earlier is None:
                            RECORDS.labels(label, "duplicate").inc(count)
                            return replay
                    binding = KeyBinding(principal.name, idempotency_key)
                if earlier is None:
                    receipts, completed = await self._publish(
                        parsed, principal, received_at, binding
                    )
                    outcome = Outcome(receipts, [False] * count)
                else:
                    outcome = await self._publish_lost(parsed, principal, received_at, earlier)
                    completed = False
        except BaseException as exc:
            if binding is not None and earlier is not None:
                # A reopened binding gets its original receipts back, not freed.
                self._later("complete", binding.key, self._completing(binding, earlier.receipts))
            elif binding is not None:
                self._release_later(binding)
            raise self._answer(exc) from None
        finally:
            self._inflight -= count
            INFLIGHT.set(self._inflight)
        if binding is not None and not completed:
            await self._complete(binding, outcome.receipts)
        republished = outcome.duplicate.count(False)
        RECORDS.labels(label, "accepted").inc(republished)
        if republished < count:
            RECORDS.labels(label, "duplicate").inc(count - republished)
        return outcome

    async def _reopen_if_lost(
        self, replay: Outcome, principal: Principal, key: str
    ) -> Outcome | None:
        """The replay, its binding back in progress and its lost records marked not
        duplicate, when a topic was recreated and some of them neither landed before nor came
        back with a Kafka restore; None when every record is still in the platform.

        Raises:
            KeyInProgress: Another request with the key is publishing them again.
        """
        lost = await self._lost(replay.receipts, principal)
        if not lost:
            return None
        log.warning(
            "Idempotency-Key %r: %d of its records were lost with their topic; publishing "
            "them again",
            key,
            len(lost),
        )
        if not await self.store.reopen_idempotency_key(principal=principal.name, key=key):
            raise self._in_progress()
        kept = [index not in lost for index in range(len(replay.receipts))]
        return Outcome(replay.receipts, kept)

    async def _lost(self, receipts: list[Receipt], principal: Principal) -> set[int]:
        """Positions of the receipts whose records are gone: their topic has another id now,
        landing had not reached them and no restore brought them back."""
        moved: list[tuple[int, KafkaPlace]] = []
        current: dict[str, str | None] = {}
        for index, receipt in enumerate(receipts):
            topic = receipt.kafka_topic
            if topic is None:
                continue
            place = self.ids.place(receipt.ingest_id, principal.name)
            if not isinstance(place, KafkaPlace):
                continue
            if await self._moved(place.topic_id, [topic], current):
                moved.append((index, place))
        if not moved:
            return set()
        gone = await self.store.vanished([place for _, place in moved])
        return {index for (index, _), vanished in zip(moved, gone, strict=True) if vanished}

    async def _moved(
        self, topic_id: str, topics: list[str], current: dict[str, str | None]
    ) -> bool:
        """Whether the topic that had `topic_id` (one of `topics`) has another id now: each of
        `topics` has a known id (asked of the publisher's cache once, kept in `current`) and
        none is `topic_id`."""
        for topic in topics:
            if topic not in current:
                current[topic] = await self.publisher.current_topic_id(topic)
        ids = [current[topic] for topic in topics]
        return None not in ids and topic_id not in ids

    async def _publish_lost(
        self, parsed: Parsed, principal: Principal, received_at: datetime, earlier: Outcome
    ) -> Outcome:
        """Publish again the records `earlier` marks lost (not duplicate); the receipts in
        order, new ones for those, the original ones for the rest."""
        lost = [index for index, kept in enumerate(earlier.duplicate) if not kept]
        candidates = [parsed.valid[index][1] for index in lost]
        placements = await self.publisher.publish(
            candidates, key_id=principal.name, traceparent=current_trace().traceparent
        )
        receipts = list(earlier.receipts)
        for index, cand, placed in zip(lost, candidates, placements, strict=True):
            receipts[index] = self._receipt(
                cand, placed, principal.name, self.publisher.sink, received_at
            )
        return Outcome(receipts, earlier.duplicate)

    def _answer(self, exc: BaseException) -> BaseException:
        """The error a failed ingest answers with; its causes are logged, never shown."""
        if isinstance(exc, IngestError | asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            return exc
        if isinstance(exc, SinkOverloaded):
            return self._unavailable(
                "overloaded", "the sink's queue is full; retry after the Retry-After delay"
            )
        if isinstance(exc, TimeoutError):
            return self._unavailable(
                "timeout",
                f"the sink did not acknowledge within {self.settings.sink_timeout_s:g}s",
            )
        log.warning("ingest failed: %s", exc, exc_info=not isinstance(exc, SinkDown))
        kind = "sink" if isinstance(exc, SinkDown) else "store or sink"
        return self._unavailable(
            "unavailable", f"the {kind} is unavailable; retry after the Retry-After delay"
        )

    async def _claim(
        self, parsed: Parsed, principal: Principal, route: str, key: str
    ) -> Outcome | None:
        """Bind `key` to this request; the earlier outcome when it is a replay.

        Raises:
            KeyConflict: The key is bound to another request (`KeyInProgress`: or still in
                progress).
        """
        claim = await self.store.claim_idempotency_key(
            principal=principal.name, key=key, route=route, request_sha256=parsed.request_sha256
        )
        if claim.state == "claimed":
            return None
        if claim.state == "replay":
            return Outcome(list(claim.receipts), [True] * len(claim.receipts))
        if claim.state == "in_progress":
            raise self._in_progress()
        raise _key_error(
            KeyConflict,
            "this Idempotency-Key was already used for a different request; "
            "use a new key for a new request",
            "idempotency_key_conflict",
        )

    def _in_progress(self) -> KeyConflict:
        return _key_error(
            KeyInProgress,
            "a request with this Idempotency-Key is still in progress; retry after the "
            "Retry-After delay to get its receipts",
            "idempotency_key_in_progress",
            retry_after_s=self.settings.retry_after_s,
        )

    def _completing(
        self, binding: KeyBinding, receipts: list[Receipt]
    ) -> Callable[[], Awaitable[None]]:
        """The write that completes `binding` with `receipts` (run now or by `_later`)."""
        return lambda: self.store.complete_idempotency_key(
            principal=binding.principal, key=binding.key, receipts=receipts
        )

    async def _complete(self, binding: KeyBinding, receipts: list[Receipt]) -> None:
        complete = self._completing(binding, receipts)
        try:
            await complete()
        except Exception as exc:
            # The records are durable: answer 200 anyway and keep trying in the background
            # until the binding would expire (twice the sink timeout); if it does expire, a
            # retry after that publishes again (docs/API.md, the at-least-once window).
            log.warning("could not complete Idempotency-Key %r, retrying: %s", binding.key, exc)
            self._later("complete", binding.key, complete)

    def _release_later(self, binding: KeyBinding) -> None:
        """Free the key in a task of its own: the request may be cancelled (disconnect)."""
        self._later(
            "free",
            binding.key,
            lambda: self.store.release_idempotency_key(
                principal=binding.principal, key=binding.key
            ),
        )

    def _later(self, what: str, key: str, write: Callable[[], Awaitable[None]]) -> None:
        """Run an Idempotency-Key write in a task of its own, retried within the binding's
        in-progress lifetime (twice the sink timeout)."""

        async def run() -> None:
            deadline = time.monotonic() + 2 * self.settings.sink_timeout_s
            while True:
                try:
                    await write()
                    return
                except Exception as exc:
                    if time.monotonic() + _RETRY_PAUSE_S > deadline:
                        log.warning("could not %s Idempotency-Key %r: %s", what, key, exc)
                        return
                await asyncio.sleep(_RETRY_PAUSE_S)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(
        self,
        parsed: Parsed,
        principal: Principal,
        received_at: datetime,
        binding: KeyBinding | None,
    ) -> tuple[list[Receipt], bool]:
        """Publish the valid records; a signed receipt for each from where the sink put it,
        and whether `binding` was completed with them in the sink's own transaction."""
        candidates = [cand for _, cand in parsed.valid]
        sink = self.publisher.sink

        def receipts_of(placements: list[Placement]) -> list[Receipt]:
            return [
                self._receipt(cand, placed, principal.name, sink, received_at)
                for cand, placed in zip(candidates, placements, strict=True)
            ]

        if binding is not None and isinstance(self.publisher, BindingPublisher):
            receipts = await self.publisher.publish_bound(
                candidates, key_id=principal.name, binding=binding, receipts_of=receipts_of
            )
            return receipts, True
        placements = await self.publisher.publish(
            candidates, key_id=principal.name, traceparent=current_trace().traceparent
        )
        return receipts_of(placements), False

    def _receipt(
        self, cand: Candidate, placed: Placement, key_id: str, sink: str, received_at: datetime
    ) -> Receipt:
        place = placed.place
        receipt = Receipt(
            ingest_id="",
            entity=entity_label(cand.entity),
            record_key=cand.record_key,
            sink=sink,
            received_at=received_at,
            durable_at=placed.durable_at,
        )
        if isinstance(place, OutboxPlace):
            receipt.ingest_id = self.ids.outbox(place.outbox_id, key_id)
            receipt.outbox_id = place.outbox_id
        else:
            receipt.ingest_id = self.ids.kafka(
                place.topic_id, place.partition, place.offset, place.timestamp_ms, key_id
            )
            receipt.kafka_topic = placed.topic
            receipt.kafka_partition = place.partition
            receipt.kafka_offset = place.offset
        return receipt

    async def get_receipt(self, ingest_id: str, *, principal: Principal) -> Located | None:
        """Where the record of `ingest_id` is, if `principal` sent it.

        None for a malformed or forged id and for another key's id alike, without a lookup.
        """
        place = self.ids.place(ingest_id, principal.name)
        if place is None:
            return None
        later = await self.store.whereabouts(place, ingest_id)
        if not isinstance(place, KafkaPlace):
            return Located(ingest_id, place, later)
        if later.entity is None:
            later = replace(later, entity=self.publisher.entity_of(place.topic_id))
        return Located(ingest_id, place, later, lost=await self._is_lost(place, later))

    async def _is_lost(self, place: KafkaPlace, later: Whereabouts) -> bool:
        """Whether a record not landed is gone with its topic (as an Idempotency-Key replay
        tells, `_lost`): its topic has another id now, and no restore brought it back. Asks
        the store only then; the topic ids come from the publisher's cache."""
        if later.landed_at is not None:
            return False
        if time.time() - place.timestamp_ms / 1000 < LOST_AFTER_S:
            return False
        # A topic that never reported progress names no entity: then no topic may have the id.
        topics = [_TOPICS[later.entity]] if later.entity in _TOPICS else list(_TOPICS.values())
        if not await self._moved(place.topic_id, topics, {}):
            return False
        return (await self.store.vanished([place]))[0]

    async def drain(self) -> None:
        """Wait (bounded) for the store writes still running, e.g. before shutdown."""
        if self._background:
            await asyncio.wait(self._background, timeout=self.settings.sink_timeout_s)


def _key_error(
    error: type[KeyConflict], message: str, kind: str, *, retry_after_s: int | None = None
) -> KeyConflict:
    return error(
        message,
        detail=[{"loc": ["header", "Idempotency-Key"], "msg": message, "type": kind}],
        retry_after_s=retry_after_s,
    )
