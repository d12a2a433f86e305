"""Prometheus metrics of the landing job: what it lands, how long it takes, how far behind it is.

`dataplatform run landing` serves them with prometheus-client on
`LAKEHOUSE_METRICS_HOST:LAKEHOUSE_METRICS_PORT`; the platform's Prometheus scrapes them as job
`landing`. Entities are labelled `<domain>.<entity>`, as in the ingestor's metrics.

Consumer lag is what the issue defines it as: the log-end offset of each partition minus the
offset landing has committed for it. The committed offsets come from Spark's progress reports
(the end offsets of the last micro-batch, which the checkpoint has then recorded); the log-end
offsets are asked of Kafka at each scrape, so a job whose query is stuck or failed (its process
still serving) shows a growing lag rather than its last value; a job that is gone is `up == 0`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pyspark.sql.streaming import StreamingQueryListener

from dataplatform.contracts import Entity

logger = logging.getLogger("pyspark_jobs.landing")

RECORDS = Counter(
    "landing_records_total",
    "Records landed by entity and table: bronze (valid) or quarantine (refused by the contract).",
    ["entity", "table"],
)
BATCHES = Counter(
    "landing_batches_total", "Micro-batches written to bronze (and quarantine).", ["entity"]
)
BATCH_SECONDS = Histogram(
    "landing_batch_duration_seconds",
    "Wall time of one micro-batch's write: contract check, bronze and quarantine appends.",
    ["entity"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
COMMIT_SECONDS = Histogram(
    "landing_delta_commit_seconds",
    "Time of one Delta append (write and commit), by entity and table.",
    ["entity", "table"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TIME_TO_BRONZE = Histogram(
    "landing_time_to_bronze_seconds",
    "From the Kafka timestamp (the ingestor's acknowledgement) of each micro-batch's oldest "
    "record to the end of its bronze commit: the worst time-to-table of the batch.",
    ["entity"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
CHECKPOINT_SECONDS = Histogram(
    "landing_delta_checkpoint_seconds",
    "Time to write one Delta checkpoint of a bronze or quarantine table, beside the "
    "micro-batches (no batch waits for it).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CHECKPOINT_FAILURES = Counter(
    "landing_delta_checkpoint_failures_total",
    "Delta checkpoints that failed (the table is intact; readers replay more commits).",
)
LAST_BATCH = Gauge(
    "landing_last_batch_timestamp_seconds",
    "When the entity's last micro-batch was committed (Unix time).",
    ["entity"],
)

LAG_METRIC = "landing_consumer_lag_records"
_LAG_HELP = "Kafka log-end offset minus the offset landing has committed, per partition."


def entity_label(entity: Entity) -> str:
    """`<domain>.<entity>`, the entity's label in every platform metric."""
    return f"{entity.domain}.{entity.name}"


def declare_entity(entity: Entity) -> None:
    """Create the entity's series at zero, so rates exist before its first quarantined record."""
    label = entity_label(entity)
    RECORDS.labels(label, "bronze")
    RECORDS.labels(label, "quarantine")
    BATCHES.labels(label)


def end_offsets(source: Any) -> dict[str, dict[int, int]]:
    """`{topic: {partition: offset}}` of a Kafka source's progress (`endOffset`), or empty.

    Accepts both shapes PySpark hands out: a listener event's `SourceProgress`, whose
    `endOffset` is JSON text, and a source of `StreamingQuery.lastProgress` (a dict, its
    `endOffset` already parsed).
    """
    value = (
        source.get("endOffset") if isinstance(source, dict) else getattr(source, "endOffset", None)
    )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {
        topic: {int(p): int(o) for p, o in partitions.items()}
        for topic, partitions in value.items()
        if isinstance(partitions, dict)
    }


def progress_sources(progress: Any) -> list[Any]:
    """The sources of a progress report (a listener's object or `lastProgress`'s dict)."""
    if progress is None:
        return []
    if isinstance(progress, dict):
        return list(progress.get("sources") or [])
    return list(progress.sources)


#: Errors of a topic or partition that no longer exists (deleted since landing reported it).
_GONE = frozenset({KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART})


def _high(consumer: Consumer, topic: str, partition: int) -> int:
    """The partition's log-end offset (high watermark), asked of the broker now."""
    _, high = consumer.get_watermark_offsets(
        TopicPartition(topic, partition), timeout=5, cached=False
    )
    return int(high)


class ConsumerLag(Collector):
    """`landing_consumer_lag_records{topic, partition}`, computed at scrape time.

    Holds the offsets landing committed last (from `landed`) and asks Kafka for each
    partition's high watermark when Prometheus scrapes. Partitions landing has not reported
    yet (before the first micro-batch of a run) have no series.
    """

    def __init__(self) -> None:
        """No Kafka connection until the first scrape after `landed`."""
        self._lock = threading.Lock()
        self._landed: dict[str, dict[int, int]] = {}
        self._bootstrap = ""
        self._consumer: Consumer | None = None

    def landed(self, bootstrap_servers: str, offsets: dict[str, dict[int, int]]) -> None:
        """Record the offsets up to which landing committed (per topic and partition)."""
        with self._lock:
            self._bootstrap = bootstrap_servers
            for topic, partitions in offsets.items():
                self._landed.setdefault(topic, {}).update(partitions)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """The family's name without samples (registration must not contact Kafka)."""
        return [GaugeMetricFamily(LAG_METRIC, _LAG_HELP, labels=["topic", "partition"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One sample per landed partition: high watermark minus committed offset."""
        family = GaugeMetricFamily(LAG_METRIC, _LAG_HELP, labels=["topic", "partition"])
        with self._lock:
            landed = {topic: dict(parts) for topic, parts in self._landed.items()}
            bootstrap = self._bootstrap
        if landed:
            try:
                consumer = self._watermark_consumer(bootstrap)
                for topic, partitions in sorted(landed.items()):
                    try:
                        lags = [
                            (partition, _high(consumer, topic, partition) - offset)
                            for partition, offset in sorted(partitions.items())
                        ]
                    except KafkaException as exc:
                        if exc.args[0].code() not in _GONE:
                            raise
                        self._forget(topic)  # deleted: it has no lag, the other topics do
                        continue
                    for partition, lag in lags:
                        family.add_metric([topic, str(partition)], max(lag, 0))
            except KafkaException as exc:
                # Without Kafka there is no log-end offset: no lag sample rather than a made-up
                # one (the scrape itself still succeeds, with the job's other metrics).
                logger.warning("consumer lag not measured: Kafka did not answer (%s)", exc)
                family = GaugeMetricFamily(LAG_METRIC, _LAG_HELP, labels=["topic", "partition"])
        yield family

    def _forget(self, topic: str) -> None:
        with self._lock:
            self._landed.pop(topic, None)

    def _watermark_consumer(self, bootstrap: str) -> Consumer:
        # A group-less consumer only reads watermarks; it never joins a group or commits.
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": "landing-metrics",
                    "enable.auto.commit": False,
                    "log_level": 0,
                }
            )
        return self._consumer


#: The process's lag collector, registered once with prometheus-client's default registry.
LAG = ConsumerLag()
REGISTRY.register(LAG)


class ProgressMetrics(StreamingQueryListener):
    """Feeds `LAG` from each landing query's progress report (its committed end offsets)."""

    def __init__(self, bootstrap_servers: str) -> None:
        """Report lag against the brokers at `bootstrap_servers`."""
        self.bootstrap_servers = bootstrap_servers

    def onQueryStarted(self, event: Any) -> None:
        """Nothing to measure before the first micro-batch."""

    def observe(self, progress: Any) -> None:
        """Record the end offsets of a progress report as the committed position."""
        for source in progress_sources(progress):
            offsets = end_offsets(source)
            if offsets:
                LAG.landed(self.bootstrap_servers, offsets)

    def onQueryProgress(self, event: Any) -> None:
        """A micro-batch finished: its end offsets are now the committed position."""
        self.observe(event.progress)

    def onQueryIdle(self, event: Any) -> None:
        """Idle triggers commit nothing new."""

    def onQueryTerminated(self, event: Any) -> None:
        """The committed offsets stay: the lag of a failed query grows until the job exits."""
