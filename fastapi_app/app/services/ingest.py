"""Parse, validate and ingest records: the path every ingest endpoint shares.

Speed matters here (see `docs/API.md`, performance): bodies are parsed once with orjson and
validated with the contract's compiled pydantic validator, and what goes to the sink is the
parsed input re-emitted as compact JSON with sorted keys. That is the record exactly as the
client sent it (no model re-serialisation) and also the canonical form its hash is taken over,
so whitespace or key order never make a retry look like a new version.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import ValidationError

from dataplatform.contracts import Entity
from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.errors import ApiError, ErrorDict, validation_details, validation_message
from fastapi_app.app.core.publisher import Publisher, SinkOverloaded, SinkUnavailable
from fastapi_app.app.core.security import Principal
from fastapi_app.app.core.store import (
    Candidate,
    IngestStore,
    Receipt,
    ReceiptView,
    entity_label,
)
from fastapi_app.app.core.telemetry import INFLIGHT, RECORDS, SINK_ERRORS, current_trace

log = logging.getLogger(__name__)

BatchFormat = Literal["json", "ndjson"]
_SORTED = orjson.OPT_SORT_KEYS


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


def _candidate(entity: Entity, obj: Any, *, prefix: list[str | int]) -> Candidate:
    try:
        model = entity.model.model_validate(obj)
    except ValidationError as exc:
        raise _Rejected(validation_details(exc, prefix=prefix)) from None
    payload = orjson.dumps(obj, option=_SORTED)
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


def _invalid_json(exc: orjson.JSONDecodeError, *, loc: list[str | int]) -> ErrorDict:
    return {"loc": loc, "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}


def parse_record(entity: Entity, body: bytes) -> Parsed:
    """Parse the body of a single-record endpoint.

    Raises:
        ApiError: 400 for invalid JSON, 422 naming every invalid field.
    """
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, f"request body is not valid JSON: {exc}", detail=[_invalid_json(exc, loc=["body"])]
        ) from None
    try:
        cand = _candidate(entity, obj, prefix=["body"])
    except _Rejected as rejected:
        title = entity.model.__name__
        raise ApiError(
            422, validation_message(rejected.details, title=title), detail=rejected.details
        ) from None
    return Parsed([(0, cand)], [], cand.payload_sha256, 1)


def _ndjson_lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    index = 0
    for line in body.split(b"\n"):
        line = line.strip()
        if line:  # blank lines (and a trailing newline) are not records
            yield index, line
            index += 1


def parse_batch(
    entity: Entity, body: bytes, fmt: BatchFormat, settings: IngestorSettings
) -> Parsed:
    """Parse a batch body: a JSON array, or NDJSON (one record per line).

    Invalid records are rejected one by one; the request fails as a whole only when its framing
    is broken or a limit is exceeded.

    Raises:
        ApiError: 400 (the array is not valid JSON / not an array), 413 (too many records or a
            record too large), 422 (no records).
    """
    items: list[tuple[int, Any | bytes]]
    if fmt == "json":
        try:
            array = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(
                400,
                f"request body is not valid JSON: {exc}",
                detail=[_invalid_json(exc, loc=["body"])],
            ) from None
        if not isinstance(array, list):
            raise ApiError(
                400,
                "a JSON batch must be an array of records (or send NDJSON with "
                "Content-Type: application/x-ndjson)",
                detail=[
                    {"loc": ["body"], "msg": "Input should be a valid array", "type": "list_type"}
                ],
            )
        items = list(enumerate(array))
    else:
        items = list(_ndjson_lines(body))
    if len(items) > settings.max_batch_records:
        raise ApiError(
            413,
            f"batch has {len(items)} records; "
            f"the limit is {settings.max_batch_records} per request",
            detail=[{"loc": ["body"], "msg": "too many records", "type": "batch_too_large"}],
        )
    if not items:
        raise ApiError(
            422,
            "1 validation error for batch: body: the batch holds no records",
            detail=[{"loc": ["body"], "msg": "the batch holds no records", "type": "too_short"}],
        )
    valid: list[tuple[int, Candidate]] = []
    rejected: list[tuple[int, list[ErrorDict]]] = []
    fingerprint = hashlib.sha256()
    limit = settings.max_record_bytes
    for index, item in items:
        if isinstance(item, bytes):  # an NDJSON line
            size = len(item)
            try:
                obj = orjson.loads(item)
            except orjson.JSONDecodeError as exc:
                _check_record_size(size, index, limit)
                rejected.append((index, [_invalid_json(exc, loc=["body", index])]))
                fingerprint.update(hashlib.sha256(item).digest())
                continue
        else:
            obj = item
            size = len(orjson.dumps(obj))
        _check_record_size(size, index, limit)
        try:
            cand = _candidate(entity, obj, prefix=["body", index])
        except _Rejected as exc:
            rejected.append((index, exc.details))
            fingerprint.update(hashlib.sha256(orjson.dumps(obj, option=_SORTED)).digest())
            continue
        valid.append((index, cand))
        fingerprint.update(cand.payload_sha256)
    return Parsed(valid, rejected, fingerprint.digest(), len(items))


def _check_record_size(size: int, index: int, limit: int) -> None:
    if size > limit:
        raise ApiError(
            413,
            f"record {index} is {size} bytes; the limit is {limit} bytes per record",
            detail=[
                {"loc": ["body", index], "msg": "record too large", "type": "record_too_large"}
            ],
        )


class IngestService:
    """Reserve receipts, publish to the sink, record durability; shed load when full."""

    def __init__(
        self, settings: IngestorSettings, store: IngestStore, publisher: Publisher
    ) -> None:
        """Wire the service to its store and sink."""
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self._inflight = 0
        #: Receipts acknowledged by the sink whose `mark_durable` write is still running, and
        #: that write. The answer does not wait for it (it is bookkeeping, not durability).
        self._marking: dict[UUID, tuple[Receipt, asyncio.Task[None]]] = {}

    def _unavailable(self, reason: str, message: str) -> ApiError:
        SINK_ERRORS.labels(self.publisher.sink, reason).inc()
        return ApiError(
            503,
            message,
            detail=[{"loc": ["sink", self.publisher.sink], "msg": message, "type": reason}],
            headers={"Retry-After": str(self.settings.retry_after_s)},
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
        """Make the valid records of `parsed` durable (or find their earlier receipts).

        Raises:
            ApiError: 409 (the `Idempotency-Key` was used for a different request), 503 (the
                sink or the store failed or timed out, or too many records are in flight).
        """
        count = len(parsed.valid)
        settings = self.settings
        if self._inflight + count > settings.max_inflight_records:
            raise self._unavailable(
                "overloaded", "the ingestor is at capacity; retry after the Retry-After delay"
            )
        self._inflight += count
        INFLIGHT.set(self._inflight)
        try:
            return await self._ingest(entity, parsed, principal, route, idempotency_key)
        except ApiError:
            raise
        except SinkOverloaded as exc:
            raise self._unavailable("overloaded", f"the sink's queue is full: {exc}") from None
        except TimeoutError:
            raise self._unavailable(
                "timeout", f"the sink did not acknowledge within {settings.sink_timeout_s:g}s"
            ) from None
        except SinkUnavailable as exc:
            raise self._unavailable("unavailable", str(exc)) from None
        except Exception as exc:
            log.warning("ingest failed: %s", exc, exc_info=True)
            raise self._unavailable("unavailable", f"the store or sink failed: {exc}") from None
        finally:
            self._inflight -= count
            INFLIGHT.set(self._inflight)

    async def _ingest(
        self,
        entity: Entity,
        parsed: Parsed,
        principal: Principal,
        route: str,
        idempotency_key: str | None,
    ) -> Outcome:
        store = self.store
        # A little longer than the sink's own timeout, so the sink's error normally wins.
        async with asyncio.timeout(self.settings.sink_timeout_s + 1):
            if idempotency_key is not None:
                claimed = await store.claim_idempotency_key(
                    principal=principal.name,
                    key=idempotency_key,
                    route=route,
                    request_sha256=parsed.request_sha256,
                )
                if not claimed:
                    raise ApiError(
                        409,
                        "this Idempotency-Key was already used for a different request; "
                        "use a new key for a new request",
                        detail=[
                            {
                                "loc": ["header", "Idempotency-Key"],
                                "msg": "key reused with a different payload",
                                "type": "idempotency_key_conflict",
                            }
                        ],
                    )
            candidates = [cand for _, cand in parsed.valid]
            receipts = await store.reserve(
                candidates, principal=principal.name, sink=self.publisher.sink
            )
            if self._marking:
                # A repeat arriving while its first copy's durability is still being written:
                # the sink has it, so answer with that receipt instead of publishing again.
                for i, receipt in enumerate(receipts):
                    marking = self._marking.get(receipt.ingest_id)
                    if marking is not None and receipt.status != "durable":
                        receipts[i] = replace(marking[0], created=False)
            # The same record twice in one request shares one receipt and one publish.
            seen: dict[Any, Receipt] = {}
            duplicate = []
            for i, receipt in enumerate(receipts):
                first = seen.setdefault(receipt.ingest_id, receipt)
                duplicate.append(first is not receipt or not receipt.created)
                receipts[i] = first
            pending = [
                (cand, receipt)
                for cand, receipt in zip(candidates, receipts, strict=True)
                if receipt.status != "durable" and seen.pop(receipt.ingest_id, None) is not None
            ]
            if pending:
                # A reserved-but-unacknowledged record (a crash or a failed attempt before) is
                # published again under the same ingest id: downstream dedups on it.
                await self.publisher.publish(pending, traceparent=current_trace().traceparent)
        if pending:
            marked = [receipt for _, receipt in pending]
            if len(self._marking) + len(marked) > self.settings.max_inflight_records:
                await self._mark(marked)  # the store lags: wait for it (bounded backlog)
            else:
                task = asyncio.create_task(self._mark(marked))
                for receipt in marked:
                    self._marking[receipt.ingest_id] = (receipt, task)
        label = entity_label(entity)
        dup_count = sum(duplicate)
        if dup_count:
            RECORDS.labels(label, "duplicate").inc(dup_count)
        if len(receipts) - dup_count:
            RECORDS.labels(label, "accepted").inc(len(receipts) - dup_count)
        if parsed.rejected:
            RECORDS.labels(label, "rejected").inc(len(parsed.rejected))
        return Outcome(receipts, duplicate)

    async def _mark(self, receipts: list[Receipt]) -> None:
        try:
            async with asyncio.timeout(self.settings.sink_timeout_s):
                await self.store.mark_durable(receipts)
        except Exception as exc:
            # The records are durable in the sink; only their receipts lag. A retry
            # re-publishes under the same ingest ids, which downstream deduplicates.
            log.warning("could not record durability of %d receipts: %s", len(receipts), exc)
        finally:
            for receipt in receipts:
                self._marking.pop(receipt.ingest_id, None)

    async def get_receipt(self, ingest_id: UUID) -> ReceiptView | None:
        """The stored receipt, after any durability write of it still running has finished."""
        marking = self._marking.get(ingest_id)
        if marking is not None:
            await asyncio.wait({marking[1]}, timeout=self.settings.sink_timeout_s)
        return await self.store.get_receipt(ingest_id)

    async def drain(self) -> None:
        """Wait (bounded) for the durability writes still running, e.g. before shutdown."""
        tasks = {task for _, task in self._marking.values()}
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.sink_timeout_s)


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
