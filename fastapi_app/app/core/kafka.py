"""Kafka publisher: idempotent producer, `acks=all`, acknowledged before the API answers.

`produce()` only enqueues; librdkafka batches and sends in its own (C) threads. Delivery
reports are served by a task on the event loop that calls `poll(0)` while messages are
outstanding (every `_POLL_INTERVAL_S` when nothing came back) and sleeps when none are. Serving
them on the loop, not in a poll thread, matters: confluent-kafka runs one Python callback per
message and takes the GIL for each, and a poll thread contending with a busy event loop for the
GIL made every batch of 500 wait behind hundreds of GIL hand-offs (measured: batch throughput
several times lower, p99 in seconds; see docs/BENCHMARKS.md). On the loop a callback is a plain
function call and a finished request's future is resolved directly.

The queue is bounded twice: librdkafka's `queue.buffering.max.messages`, and the service's
in-flight limit in front of it, so overload becomes fast 503s instead of growing latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from opentelemetry import trace
from opentelemetry.trace import SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dataplatform.clients.kafka import ensure_topics, producer_config, topic_ids
from dataplatform.contracts import ENTITIES
from dataplatform.contracts.bronze import (
    HEADER_CONTENT_TYPE,
    HEADER_KEY_ID,
    HEADER_TOPIC_ID,
    HEADER_TRACEPARENT,
)
from dataplatform.ingest_ids import KafkaPlace, url_safe_topic_id
from dataplatform.settings import IngestorSettings, KafkaSettings
from fastapi_app.app.core.publisher import SinkOverloaded, SinkUnavailable
from fastapi_app.app.core.store import Candidate, Placement, SinkName, entity_label
from fastapi_app.app.core.telemetry import SINK_LATENCY

log = logging.getLogger(__name__)

_JSON = b"application/json"
#: How long the poll task waits between empty polls while messages are outstanding: a bound on
#: the delay it adds to an acknowledgement, for ~1,000 cheap wake-ups a second under load.
_POLL_INTERVAL_S = 0.0005
#: W3C trace context, whatever OTEL_PROPAGATORS says: the header downstream reads is `traceparent`.
_W3C = TraceContextTextMapPropagator()
#: How often the topic ids are read again: how long a recreated topic's records could carry
#: the old topic's id in their ingest ids.
_TOPIC_IDS_TTL_S = 10.0


class _Delivery:
    """The delivery reports of one `publish()` call."""

    __slots__ = ("errors", "future", "offsets", "remaining")

    def __init__(self, count: int, future: asyncio.Future[None]) -> None:
        self.remaining = count
        self.future = future
        #: (partition, offset, timestamp ms) per record, in order.
        self.offsets: list[tuple[int, int, int] | None] = [None] * count
        self.errors: list[str] = []

    def resolve(self) -> None:
        """Finish the request's future (unless the request gave up: timeout, disconnect)."""
        if self.future.done():
            return
        if self.errors:
            self.future.set_exception(SinkUnavailable(f"kafka: {self.errors[0]}"))
        else:
            self.future.set_result(None)


class KafkaPublisher:
    """`Publisher` for the intermediate and advanced tracks."""

    sink: SinkName = "kafka"

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: IngestorSettings,
        *,
        tracer_provider: TracerProvider | None = None,
        read_topic_ids: Callable[[KafkaSettings, list[str]], dict[str, str | None]] | None = None,
    ) -> None:
        """Configure; `start()` creates the producer and its poll thread.

        Args:
            kafka: Brokers and client settings.
            settings: The ingestor's timeouts and queue bounds.
            tracer_provider: Where the produce spans go; default the global one.
            read_topic_ids: Reads the topics' ids; default Kafka's DescribeTopics (which
                librdkafka's mock cluster does not serve).
        """
        self._read_ids = read_topic_ids or functools.partial(topic_ids, timeout_s=2.0)
        self._kafka = kafka
        self._settings = settings
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._producer: Producer | None = None
        self._fatal: str | None = None
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        #: Topic name -> Kafka topic id, and when they were read (monotonic seconds).
        self._topic_ids: dict[str, str] = {}
        self._topic_ids_at = float("-inf")

    def _config(self) -> dict[str, Any]:
        timeout_ms = int(self._settings.sink_timeout_s * 1000)
        return {
            **producer_config(self._kafka),
            "linger.ms": self._settings.kafka_linger_ms,
            "queue.buffering.max.messages": self._settings.kafka_queue_max_messages,
            # librdkafka gives up on a message at the same deadline the API answers 503 by.
            "message.timeout.ms": timeout_ms,
            "request.timeout.ms": min(timeout_ms, 30000),
            "error_cb": self._on_error,
        }

    def _note_fatal(self, exc: KafkaException) -> None:
        """Remember a fatal error raised by the client (librdkafka raises it from `poll()` and
        `produce()` rather than through `error_cb`), so the next publish replaces the producer.
        """
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.fatal():
            self._on_error(error)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            # The idempotent producer's state is lost; a new producer replaces it.
            self._fatal = error.str()
            log.error("kafka producer fatal error: %s", error.str())
        else:
            log.warning("kafka: %s", error.str())

    async def start(self) -> None:
        """Create the producer and the poll task; create missing topics if Kafka is up."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._producer = Producer(self._config())
        self._poller = asyncio.create_task(self._poll(), name="kafka-poll")
        try:
            await asyncio.to_thread(ensure_topics, self._kafka, [e.topic for e in ENTITIES])
            await self._read_topic_ids()
        except (KafkaException, SinkUnavailable) as exc:
            log.warning("could not check the topics (kafka down?): %s", exc)

    async def _read_topic_ids(self) -> None:
        """Read the topic ids the ingest ids name (a topic recreated gets a new one)."""
        try:
            found = await asyncio.to_thread(
                self._read_ids, self._kafka, [e.topic for e in ENTITIES]
            )
        except KafkaException as exc:
            raise SinkUnavailable(f"kafka unreachable: {exc}") from exc
        self._topic_ids = {name: topic_id for name, topic_id in found.items() if topic_id}
        self._topic_ids_at = time.monotonic()

    def entity_of(self, topic_id: str) -> str | None:
        """See `Publisher.entity_of` (topics read since the last refresh only)."""
        for entity in ENTITIES:
            if url_safe_topic_id(self._topic_ids.get(entity.topic, "")) == topic_id:
                return entity_label(entity)
        return None

    async def current_topic_id(self, topic: str) -> str | None:
        """See `Publisher.current_topic_id` (the ids `_refresh_topic_ids` keeps; None when
        Kafka never answered)."""
        with contextlib.suppress(SinkUnavailable):
            await self._refresh_topic_ids(topic)
        found = self._topic_ids.get(topic)
        return None if found is None else url_safe_topic_id(found)

    async def _refresh_topic_ids(self, *topics: str) -> None:
        """Read the topic ids again when older than `_TOPIC_IDS_TTL_S` or one of `topics` is
        missing; when Kafka does not answer, keep stale ids if there are any.

        Raises:
            SinkUnavailable: Kafka did not answer and the ids are missing, not just stale.
        """
        stale = time.monotonic() - self._topic_ids_at > _TOPIC_IDS_TTL_S
        if stale or any(topic not in self._topic_ids for topic in topics):
            try:
                await self._read_topic_ids()
            except SinkUnavailable:
                if not stale or not self._topic_ids:
                    raise
                log.warning("could not read the kafka topic ids again; using the last ones")

    async def _topic_ids_for(self, records: list[Candidate]) -> dict[str, str]:
        """The current topic ids, read again when older than `_TOPIC_IDS_TTL_S` or missing."""
        await self._refresh_topic_ids(*{c.entity.topic for c in records})
        missing = {c.entity.topic for c in records} - set(self._topic_ids)
        if missing:
            raise SinkUnavailable(f"kafka topics missing: {', '.join(sorted(missing))}")
        return self._topic_ids

    async def close(self) -> None:
        """Stop the poll task, then wait (bounded) for queued messages."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        producer = self._producer
        if producer is not None:
            # Delivery reports now run in the flush thread; `_finish` hands them to the loop.
            remaining = await asyncio.to_thread(producer.flush, self._settings.sink_timeout_s)
            if remaining:
                log.warning("closing with %d kafka messages unacknowledged", remaining)
            # The producer holds `self._on_error` (its error_cb): the cycle is invisible to the
            # garbage collector, so without this the closed producer's threads ran on for good.
            self._producer = None

    async def _poll(self) -> None:
        while True:
            producer = self._producer
            if producer is None or len(producer) == 0:
                # Nothing awaits a report: sleep until `publish()` produces something.
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                served = producer.poll(0)
            except KafkaException as exc:
                # A fatal error (e.g. the broker lost the idempotent producer's sequence state
                # when its data was restored): the producer cannot go on.
                log.exception("kafka poll failed")
                self._note_fatal(exc)
                served = 0
            except Exception:  # a callback raised; never let the poll task die
                log.exception("kafka poll failed")
                served = 0
            # Let the requests just resolved run before polling again.
            await asyncio.sleep(0 if served else _POLL_INTERVAL_S)

    def _finish(self, delivery: _Delivery) -> None:
        if threading.get_ident() == self._loop_thread:
            delivery.resolve()
        elif self._loop is not None:  # reports served by `flush()` while closing
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(delivery.resolve)

    async def ping(self) -> None:
        """Ready when a broker answers and lists our topics."""
        if self._producer is None:
            raise SinkUnavailable("kafka producer not started")
        if self._fatal:
            raise SinkUnavailable(f"kafka producer failed: {self._fatal}")
        try:
            metadata = await asyncio.to_thread(self._producer.list_topics, None, 2.0)
        except KafkaException as exc:
            raise SinkUnavailable(f"kafka unreachable: {exc}") from exc
        missing = [e.topic for e in ENTITIES if e.topic not in metadata.topics]
        if missing:
            raise SinkUnavailable(f"kafka topics missing: {', '.join(missing)}")
        if not self._topic_ids:
            await self._read_topic_ids()

    def _replace_failed_producer(self) -> Producer:
        producer = self._producer
        if self._fatal is not None or producer is None:
            log.warning("replacing the kafka producer after: %s", self._fatal)
            producer = Producer(self._config())
            self._producer = producer
            self._fatal = None
        return producer

    async def publish(
        self, records: list[Candidate], *, key_id: str, traceparent: str
    ) -> list[Placement]:
        """Produce every record and wait for all acknowledgements (or the first failure).

        Each message carries the API key's id and the topic id in its headers, from which
        landing computes the record's ingest id (`dataplatform.ingest_ids`).

        One PRODUCER span (child of `traceparent`, the request's span) covers the batch from the
        first `produce()` to the last acknowledgement; every record's `traceparent` header names
        that span, so a consumer continues the same trace.
        """
        if not records:
            return []
        ids = await self._topic_ids_for(records)
        topics = sorted({cand.entity.topic for cand in records})
        with self._tracer.start_as_current_span(
            f"send {','.join(topics)}",
            context=_W3C.extract({HEADER_TRACEPARENT: traceparent}),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": ",".join(topics),
                "messaging.batch.message_count": len(records),
            },
        ):
            carrier: dict[str, str] = {}
            _W3C.inject(carrier)
            # A no-op tracer (tracing switched off) injects nothing: pass the request's on.
            trace_header = carrier.get(HEADER_TRACEPARENT, traceparent).encode()
            return await self._produce(records, ids, key_id.encode(), trace_header)

    async def _produce(
        self, records: list[Candidate], ids: dict[str, str], key_id: bytes, trace_header: bytes
    ) -> list[Placement]:
        started = time.perf_counter()
        producer = self._replace_failed_producer()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery = _Delivery(len(records), future)

        def report(index: int) -> Any:
            def on_delivery(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    delivery.errors.append(err.str())
                else:
                    delivery.offsets[index] = (
                        msg.partition() or 0,
                        msg.offset() or 0,
                        msg.timestamp()[1],
                    )
                delivery.remaining -= 1
                if delivery.remaining == 0:
                    self._finish(delivery)

            return on_delivery

        try:
            for index, cand in enumerate(records):
                try:
                    producer.produce(
                        cand.entity.topic,
                        value=cand.payload,
                        key=cand.record_key.encode(),
                        headers=[
                            (HEADER_KEY_ID, key_id),
                            (HEADER_TOPIC_ID, ids[cand.entity.topic].encode()),
                            (HEADER_TRACEPARENT, trace_header),
                            (HEADER_CONTENT_TYPE, _JSON),
                        ],
                        on_delivery=report(index),
                    )
                except BufferError as exc:
                    # Records already enqueued are still delivered; a retry publishes them
                    # again (further versions of their keys downstream).
                    future.cancel()
                    raise SinkOverloaded("kafka producer queue is full") from exc
                except KafkaException as exc:
                    future.cancel()
                    self._note_fatal(exc)
                    raise SinkUnavailable(f"kafka refused the record: {exc}") from exc
        finally:
            self._wake.set()  # the poll task serves the reports of what was produced
        await future
        now = datetime.now(UTC)
        placements = []
        for cand, placed in zip(records, delivery.offsets, strict=True):
            assert placed is not None
            topic = cand.entity.topic
            place = KafkaPlace(url_safe_topic_id(ids[topic]), *placed)
            placements.append(Placement(place, now, topic))
        SINK_LATENCY.labels("kafka", "publish").observe(time.perf_counter() - started)
        return placements
