"""Streaming landing: Kafka topics -> `bronze/<domain>/<entity>` Delta tables, exactly once.

One streaming query per entity, each with its own checkpoint on S3. Every micro-batch is
checked against the entity's contract; valid records are appended to bronze with their ingest
metadata and order token, the others to `quarantine/landing/<domain>/<entity>` with the reason,
never dropped.

Order token: each record's `(source_epoch, source_offset)` is the topic's epoch and the Kafka
offset. The epoch of a topic comes from a small registry in the lake
(`_state/source_epochs/<domain>/<entity>.json`, written by this job only): the first topic id
landing sees gets 1, each later one (a recreated topic, landed after `reset-landing`) the next
number, so versions accepted after a topic was recreated sort after every earlier one.

Exactly once: the Kafka offsets of a micro-batch are logged in the checkpoint before the batch
runs, so a batch replayed after a crash reads the same records. Only the first batch of a run
can be such a replay, so only it asks whether its batch id is already in a table (see
`last_landed_batch`); every commit is tagged with the query's app id and batch id (its Delta
`userMetadata`) so that question has an answer, and later batches append without Delta's
per-batch transaction lookup. A SIGKILL at any point followed by a restart gives no duplicate
and no gap.

A topic recreated under the job (its Kafka topic id changed) or offsets that went backwards
stop the job with `LandingDataLossError`, which says what happened and how to reset.

Run: `dataplatform run landing`, or `spark-submit pyspark_jobs/landing.py [--available-now]`
with the jars on its command line (see `pyspark_jobs.launch.spark_submit_argv`).
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from prometheus_client import start_http_server
from pyspark import StorageLevel
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from dataplatform.clients.kafka import jvm_client_config, topic_ids
from dataplatform.contracts import Entity
from dataplatform.contracts.bronze import OUTBOX_EPOCH
from dataplatform.db.progress import PartitionProgress, ProgressWriter
from dataplatform.delta_checkpoints import checkpoint_due, write_checkpoint
from dataplatform.ingest_ids import url_safe_topic_id
from dataplatform.lake import (
    Lake,
    default_heartbeat_path,
    get_lakehouse_settings,
    landing_job_name,
    quarantine_path,
    select_entities,
    write_heartbeat,
)
from dataplatform.lineage import JobRun, LineageEmitter, ParentRun, quarantine_dataset
from dataplatform.settings import (
    KafkaSettings,
    ReceiptSettings,
    get_kafka_settings,
    get_postgres_settings,
)
from dataplatform.shutdown import exit_now, stop_on_signals
from dataplatform.spark_settings import get_spark_settings
from pyspark_jobs import landing_metrics, transforms
from pyspark_jobs.launch import start_job_session
from pyspark_jobs.lineage import add_lineage_args, landing_run
from pyspark_jobs.tables import ensure_landing_tables

logger = logging.getLogger("pyspark_jobs.landing")

#: File in each checkpoint folder recording the Kafka topic ids the checkpoint's offsets
#: belong to.
TOPIC_IDS_FILE = "dataplatform_topic_ids.json"

#: Phrases of Spark's Kafka source errors that mean offsets went backwards or data is gone.
_DATA_LOSS_MARKERS = (
    "data may have been missed",
    "some data may have been lost",
    "offset was changed from",
    "offsetoutofrange",
    "failondataloss",
    "is not available in kafka",
)


class LandingDataLossError(RuntimeError):
    """A topic was recreated or its offsets went backwards: continuing could lose records."""


def reset_instructions(entity: Entity, checkpoint: str) -> str:
    """How to recover once the cause of a `LandingDataLossError` is understood."""
    path = f"{entity.domain}/{entity.name}"
    return (
        "To reset: stop the landing job, then run "
        f"`dataplatform lake reset-landing --entity {path}` (deletes the checkpoint "
        f"{checkpoint}) and start the job again. It re-reads the topic from the earliest "
        "offset (LAKEHOUSE_STARTING_OFFSETS=latest skips what is there instead); records "
        "landed twice are harmless because curation MERGEs on the record key. Bronze keeps "
        "every record landed before the reset."
    )


# --------------------------------------------------------------------------- topic guard


def _jvm(spark: SparkSession) -> Any:
    """The py4j view of the driver JVM (PySpark types it as optional)."""
    return spark.sparkContext._jvm


def _hadoop_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    path = _jvm(spark).org.apache.hadoop.fs.Path(uri)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return path.getFileSystem(conf), path


def read_checkpoint_file(spark: SparkSession, uri: str) -> str | None:
    """Read a small text file next to Spark's checkpoint files (any Hadoop file system)."""
    fs, path = _hadoop_path(spark, uri)
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        text: str = _jvm(spark).org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    return text


def write_checkpoint_file(spark: SparkSession, uri: str, text: str) -> None:
    """Write (replace) a small text file in the checkpoint folder."""
    fs, path = _hadoop_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def current_topic_id(kafka: KafkaSettings, topic: str) -> str:
    """The current Kafka topic id of `topic`.

    Raises:
        LandingDataLossError: The topic does not exist (deleted and not recreated yet).
    """
    found = topic_ids(kafka, [topic])[topic]
    if found is None:
        raise LandingDataLossError(
            f"Kafka topic {topic!r} does not exist: it was deleted, or the platform's "
            "topics were never created (`dataplatform up` creates them)"
        )
    return found


def register_epoch(
    spark: SparkSession, lake: Lake, entity: Entity, topic: str, topic_id: str
) -> int:
    """The order-token epoch of a Kafka topic id, registering it (next number) if new.

    The registry lists the topic ids landing has read for the entity, in the order it first
    saw them; the n-th has epoch n (the starter's outbox is `OUTBOX_EPOCH`, 0). Only the
    landing job writes it, one query per entity.

    Args:
        spark: The session (the file is written through Hadoop's file system, like the
            checkpoint's).
        lake: Where the registry lives.
        entity: Whose topic.
        topic: The topic's name (recorded for people reading the file).
        topic_id: Kafka's id of the topic.

    Returns:
        The epoch, >= 1.
    """
    uri = lake.source_epochs(entity)
    text = read_checkpoint_file(spark, uri)
    registered: list[dict[str, Any]] = json.loads(text)["topics"] if text else []
    for item in registered:
        if item["topic_id"] == topic_id:
            return int(item["epoch"])
    epoch = max([OUTBOX_EPOCH, *(int(item["epoch"]) for item in registered)]) + 1
    registered.append({"topic": topic, "topic_id": topic_id, "epoch": epoch})
    write_checkpoint_file(spark, uri, json.dumps({"topics": registered}, indent=1))
    logger.info("%s: topic %s (id %s) has order-token epoch %d", uri, topic, topic_id, epoch)
    return epoch


@dataclass
class TopicGuard:
    """Stops the landing of a topic whose id no longer matches its checkpoint's.

    Spark's Kafka source notices offsets that went backwards, but a topic recreated and then
    filled beyond the checkpoint's offsets would be read from the middle, silently skipping
    its beginning. Kafka's topic id tells the two topics apart.
    """

    spark: SparkSession
    kafka: KafkaSettings
    entity: Entity
    topic: str
    checkpoint: str
    interval_s: float
    lake: Lake
    #: The topic id the checkpoint belongs to and its order-token epoch (set by `start`).
    topic_id: str = ""
    epoch: int = -1
    _expected: str | None = None
    _checked_at: float = field(default=0.0)

    @property
    def ids_file(self) -> str:
        """Where the checkpoint's topic id is recorded."""
        return f"{self.checkpoint.rstrip('/')}/{TOPIC_IDS_FILE}"

    def start(self) -> None:
        """Compare with (or record, for a new checkpoint) the topic id before any batch.

        Raises:
            LandingDataLossError: The topic was recreated since the checkpoint was written.
        """
        current = current_topic_id(self.kafka, self.topic)
        stored = read_checkpoint_file(self.spark, self.ids_file)
        if stored is None:
            write_checkpoint_file(self.spark, self.ids_file, json.dumps({self.topic: current}))
            self._expected = current
        else:
            self._expected = json.loads(stored).get(self.topic)
            self._compare(current)
        self.topic_id = self._expected or current
        self.epoch = register_epoch(self.spark, self.lake, self.entity, self.topic, self.topic_id)

    def check(self) -> None:
        """Re-check the topic id, at most every `interval_s` seconds."""
        now = time.monotonic()
        if now - self._checked_at < self.interval_s:
            return
        self._compare(current_topic_id(self.kafka, self.topic))
        self._checked_at = now

    def _compare(self, current: str) -> None:
        if self._expected is not None and current != self._expected:
            raise LandingDataLossError(
                f"Kafka topic {self.topic!r} was recreated: its topic id is now {current}, but "
                f"the landing checkpoint {self.checkpoint} holds offsets of topic id "
                f"{self._expected}. Reading on would skip or re-read records, so the job stops. "
                + reset_instructions(self.entity, self.checkpoint)
            )


def explain_failure(
    exc: BaseException, entity: Entity, checkpoint: str
) -> LandingDataLossError | None:
    """Translate a Spark Kafka-source error about lost offsets into a clear error, or None."""
    text = str(exc)
    if isinstance(exc, LandingDataLossError) or "LandingDataLossError" in text:
        detail = text.split("LandingDataLossError:", 1)[-1].strip().splitlines()[0]
        return LandingDataLossError(detail)
    if not any(marker in text.lower() for marker in _DATA_LOSS_MARKERS):
        return None
    first = next((line for line in text.splitlines() if line.strip()), text)
    return LandingDataLossError(
        f"the landing of {entity.topic} stopped because Kafka offsets went backwards or "
        f"records are no longer in the topic (the topic was recreated, truncated, or records "
        f"aged out before they were landed). Spark said: {first.strip()[:500]}. "
        + reset_instructions(entity, checkpoint)
    )


# --------------------------------------------------------------------------- micro-batches


@dataclass
class _Phases:
    """Wall time of the named phases of one micro-batch, for its log line."""

    seconds: dict[str, float] = field(default_factory=dict)
    _began: float = field(default_factory=time.monotonic)
    _last: float = field(default=0.0)

    def mark(self, name: str) -> None:
        """End the phase `name` (it began where the previous one ended)."""
        now = time.monotonic()
        self.seconds[name] = round(now - (self._last or self._began), 3)
        self._last = now

    @property
    def total_s(self) -> float:
        """Since the batch began."""
        return time.monotonic() - self._began

    def __str__(self) -> str:
        return ", ".join(f"{name} {s:.2f} s" for name, s in self.seconds.items())


#: How many of a table's newest commits a run's first batch reads to find the last batch its
#: query committed there: far more than other writers (OPTIMIZE, VACUUM) make between two
#: micro-batches of a running query.
REPLAY_LOOKBACK_COMMITS = 1000


def batch_tag(app_id: str, batch_id: int) -> str:
    """The `userMetadata` of a landing commit: the query (app id) and batch that wrote it."""
    return f"{app_id}@{batch_id}"


def last_landed_batch(lake: Lake, table: str, app_id: str) -> int:
    """The newest batch id the landing query `app_id` committed to `table`, or -1.

    Each run's first append to a table also records the Delta transaction `(app_id, batch
    id)`, so a query without one never committed there and nothing more is read. Otherwise the
    table's newest commits are read, newest first, until one tagged by the query
    (`batch_tag`). Costs one table open and a few commit files, once per run.

    Args:
        lake: Where the table is.
        table: `<layer>/<domain>/<entity>`, relative to the lake.
        app_id: The query's app id (job name and query id).
    """
    delta = lake.delta_rs(table)
    if delta is None:
        return -1
    recorded = delta.transaction_version(app_id)
    if recorded is None:
        return -1
    prefix = f"{app_id}@"
    # Usually the newest commit is the query's own; pages grow only past other writers'.
    for limit in (10, 100, REPLAY_LOOKBACK_COMMITS):
        commits = delta.history(limit)
        for commit in commits:
            tag = commit.get("userMetadata") or ""
            if tag.startswith(prefix):
                return max(int(tag[len(prefix) :]), recorded)
        if len(commits) < limit:
            break
    # Tables landed before commits were tagged recorded the transaction of every batch.
    return recorded


@dataclass
class BatchWriter:
    """The `foreachBatch` function of one entity's landing query.

    Attributes:
        lake: Where the tables are.
        entity: The entity the query lands.
        guard: Checks the topic id before each batch is written.
        checkpoints: Told every version the batches commit; writes the checkpoints due.
        pause_after_write_s: Fault injection for the kill tests: sleep after the bronze
            append, before the batch is committed to the checkpoint (0 in production).
    """

    lake: Lake
    entity: Entity
    guard: TopicGuard
    receipt_secret: bytes
    progress: ProgressWriter
    checkpoints: CheckpointThread
    pause_after_write_s: float = 0.0
    #: The fault injection pauses only batches with at least this id.
    pause_from_batch: int = 0
    query_id: str = ""
    started: threading.Event = field(default_factory=threading.Event)
    #: Records this run sent to bronze and to quarantine (the lineage run's row counts).
    landed: dict[str, int] = field(default_factory=lambda: {"valid": 0, "invalid": 0})
    _landed_once: bool = False
    #: The tables this run has appended to (their first append records a Delta transaction).
    _appended: set[str] = field(default_factory=set)
    #: The bronze version of this run's latest append (None before one): what the progress
    #: of the batches it has finished reports (`ProgressRecorder`).
    bronze_version: int | None = None

    @property
    def bronze_table(self) -> str:
        """The bronze table as the receipts' progress names it (its `s3://` URI)."""
        return self.lake.table("bronze", self.entity, scheme="s3")

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Append one micro-batch to bronze and quarantine, idempotently."""
        # The query id is known only once `start()` returns; a first batch may be faster.
        self.started.wait(timeout=60)
        phases = _Phases()
        # Only a run's first batch can be a replay of a batch a killed run had begun.
        first = not self._landed_once
        self.guard.check()
        phases.mark("guard")
        app_id = f"{landing_job_name(self.entity)}-{self.query_id}"
        checked = batch.transform(
            transforms.kafka_to_checked,
            self.entity,
            epoch=self.guard.epoch,
            receipt_secret=self.receipt_secret,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            error = F.col(f"{transforms.CHECK_COLUMN}.error")
            outcome = [
                F.count_if(error.isNull()).alias("valid"),
                F.count_if(error.isNotNull()).alias("invalid"),
                # Epoch seconds of the batch's oldest Kafka timestamp: its time to bronze.
                F.min(F.col("ingested_at").cast("double")).alias("oldest_ingested_s"),
            ]
            # Bronze is appended even when nothing passed (an empty commit that still records
            # the batch id), and quarantine only when something failed. The counts are
            # observed while the bronze append runs, without a Spark job of their own, except
            # in the first batch of a run: it may replay a batch whose append Delta then skips,
            # which would leave an observation unfilled and waiting forever.
            observed = Observation(f"landing-{batch_id}") if self._landed_once else None
            if observed is None:
                counts = checked.agg(*outcome).first().asDict()  # type: ignore[union-attr]
                phases.mark("check")
            bronze = checked if observed is None else checked.observe(observed, *outcome)
            # One task and one file per micro-batch rather than one per Kafka partition:
            # measured 20 % less time per batch at 2,500 rows and 11 % at 20,000 on 2 cores,
            # and a third of the files for Delta to track.
            bronze = bronze.coalesce(1).transform(transforms.to_bronze)
            self._append(bronze, "bronze", app_id, batch_id, first=first)
            bronze_done = time.time()
            if observed is not None:
                counts = observed.get
            self._landed_once = True
            phases.mark("bronze")
            if self.pause_after_write_s and batch_id >= self.pause_from_batch:
                logger.warning(
                    "fault injection: pausing %.0f s after the bronze append of batch %d",
                    self.pause_after_write_s,
                    batch_id,
                )
                time.sleep(self.pause_after_write_s)
            if counts["invalid"]:
                quarantined = transforms.to_quarantine(checked, stage="landing")
                self._append(quarantined, "quarantine", app_id, batch_id, first=first)
                # Before the batch's progress is reported: a receipt that reads `landed`
                # already knows the reason.
                self.progress.quarantined(
                    landing_metrics.entity_label(self.entity),
                    [
                        (r.ingest_id, r.reason)
                        for r in quarantined.select("ingest_id", "reason").collect()
                    ],
                )
                phases.mark("quarantine")
        finally:
            checked.unpersist()
        self._measure(counts, phases.total_s, bronze_done)
        self.landed["valid"] += counts["valid"]
        self.landed["invalid"] += counts["invalid"]
        logger.info(
            "landed batch %d of %s: %d to bronze, %d to quarantine in %.2f s (%s)",
            batch_id,
            self.entity.topic,
            counts["valid"],
            counts["invalid"],
            phases.total_s,
            phases,
            extra={
                "entity": f"{self.entity.domain}/{self.entity.name}",
                "batch_id": batch_id,
                "bronze_rows": counts["valid"],
                "quarantine_rows": counts["invalid"],
                "phases_s": phases.seconds,
            },
        )

    def _measure(self, counts: dict[str, Any], total_s: float, bronze_done: float) -> None:
        # A batch replayed after a crash is counted again (Delta skips its append): the
        # counters say what the job processed, bronze's rows what it holds.
        label = landing_metrics.entity_label(self.entity)
        landing_metrics.RECORDS.labels(label, "bronze").inc(counts["valid"])
        landing_metrics.RECORDS.labels(label, "quarantine").inc(counts["invalid"])
        landing_metrics.BATCHES.labels(label).inc()
        landing_metrics.BATCH_SECONDS.labels(label).observe(total_s)
        landing_metrics.LAST_BATCH.labels(label).set(bronze_done)
        if counts["oldest_ingested_s"] is not None:
            landing_metrics.TIME_TO_BRONZE.labels(label).observe(
                max(bronze_done - counts["oldest_ingested_s"], 0.0)
            )

    def _append(
        self, df: DataFrame, layer: str, app_id: str, batch_id: int, *, first: bool
    ) -> None:
        """Append `df` to the bronze or quarantine table, once per batch id.

        Only the `first` batch of a run can be a replay (Spark logs a batch's offsets before
        it runs and commits it after `foreachBatch` returns), so only then is the table asked
        whether the batch is already there. Every commit carries `batch_tag` as its
        `userMetadata`; a run's first append to a table also records the Delta transaction
        `(app_id, batch_id)`, which anchors `last_landed_batch`. Later appends skip Delta's
        transaction lookup, which rebuilds the table's state on every commit (measured: 0.55
        s of a 0.8 s append, docs/BENCHMARKS.md).
        """
        started = time.perf_counter()
        if layer == "quarantine":
            table = quarantine_path(self.entity, "landing")
        else:
            table = self.entity.table_path("bronze")
        if first and last_landed_batch(self.lake, table, app_id) >= batch_id:
            logger.info("batch %d is already in %s: not appended again", batch_id, table)
            return
        writer = (
            df.write.format("delta")
            .mode("append")
            .option("userMetadata", batch_tag(app_id, batch_id))
        )
        if table not in self._appended:
            writer = writer.option("txnAppId", app_id).option("txnVersion", batch_id)
        writer.save(self.lake.uri(table))
        self._appended.add(table)
        version = cached_version(df.sparkSession, self.lake.uri(table))
        if layer == "bronze":
            self.bronze_version = version
        self.checkpoints.committed(self.lake.uri(table, scheme="s3"), version)
        landing_metrics.COMMIT_SECONDS.labels(
            landing_metrics.entity_label(self.entity), layer
        ).observe(time.perf_counter() - started)


def cached_version(spark: SparkSession, uri: str) -> int:
    """The newest version of the Delta table at `uri` this JVM knows, read from its cached Delta
    log without I/O: after an append of this process, that commit's version or a later one."""
    delta_log = _jvm(spark).org.apache.spark.sql.delta.DeltaLog
    return int(delta_log.forTable(spark._jsparkSession, uri).unsafeVolatileSnapshot().version())


class CheckpointThread:
    """Writes the Delta checkpoints of the tables a landing run appends to, in the background.

    The tables never checkpoint inside a commit (`dataplatform.delta_checkpoints`): after each
    append the writer reports the version it made (`committed`), and every
    `LAKEHOUSE_BRONZE_CHECKPOINT_INTERVAL`-th version is checkpointed here with delta-rs, while
    the next micro-batches run. One thread for all entities: one checkpoint at a time.
    """

    def __init__(self, storage_options: dict[str, str], every: int) -> None:
        self._storage_options = storage_options
        self._every = every
        #: The version of this run's latest commit to each table.
        self._last: dict[str, int] = {}
        self._due: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="delta-checkpoints", daemon=True)

    def start(self) -> None:
        """Start writing the checkpoints that fall due."""
        self._thread.start()

    def committed(self, uri: str, version: int) -> None:
        """A commit of this run made `version` of the table at `uri` (`s3://`); never blocks."""
        previous = self._last.get(uri)
        self._last[uri] = version
        if checkpoint_due(version, self._every, previous=previous):
            self._due.put((uri, version))

    def stop(self, timeout_s: float = 60.0) -> None:
        """Write the checkpoints already due, then end (waiting at most `timeout_s`)."""
        self._due.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while (item := self._due.get()) is not None:
            uri, version = item
            started = time.perf_counter()
            try:
                write_checkpoint(uri, version, self._storage_options)
            except Exception:
                # The table stays correct; readers replay more commits until the next one.
                logger.exception("%s: the checkpoint at version %d failed", uri, version)
                landing_metrics.CHECKPOINT_FAILURES.inc()
            else:
                landing_metrics.CHECKPOINT_SECONDS.observe(time.perf_counter() - started)


# --------------------------------------------------------------------------- heartbeat


class HeartbeatListener(StreamingQueryListener):
    """Writes the heartbeat file after every progress report of the landing queries."""

    def __init__(self, path: Path, *, lake_prefix: str = "") -> None:
        self.path = path
        self.lake_prefix = lake_prefix
        self.queries: dict[str, dict[str, Any]] = {}
        self.status = "running"
        self._lock = threading.Lock()

    def write(self, status: str | None = None, **extra: Any) -> None:
        """Write the heartbeat now (the job calls it at start and on failure)."""
        with self._lock:
            if status:
                self.status = status
            state = {
                "status": self.status,
                "lake_prefix": self.lake_prefix,
                "queries": self.queries,
            }
            write_heartbeat(self.path, {**state, **extra})

    def onQueryStarted(self, event: Any) -> None:
        """A landing query started."""
        self.queries[str(event.name)] = {"id": str(event.id), "state": "started"}
        self.write()

    def observe(self, progress: Any) -> None:
        """Record a progress report: a listener's object or `lastProgress`'s dict. Reports come
        asynchronously, so one older than the batch already recorded is ignored."""
        if progress is None:
            return
        report = progress if isinstance(progress, dict) else json.loads(progress.json)
        name = str(report["name"])
        if self.queries.get(name, {}).get("batch_id", -1) > report["batchId"]:
            return
        self.queries[name] = {
            "id": str(report["id"]),
            "state": "running",
            "batch_id": report["batchId"],
            "num_input_rows": report["numInputRows"],
            "input_rows_per_second": report.get("inputRowsPerSecond"),
            "processed_rows_per_second": report.get("processedRowsPerSecond"),
            "trigger_execution_ms": report["durationMs"].get("triggerExecution"),
            # Where the micro-batch's time went: addBatch (our foreachBatch), walCommit and
            # commitOffsets (checkpoint writes), latestOffset, queryPlanning, getBatch.
            "duration_ms": dict(report["durationMs"]),
            "progress_at": report["timestamp"],
        }
        self.write()

    def onQueryProgress(self, event: Any) -> None:
        """A micro-batch finished (or, when idle, Spark's periodic no-data report)."""
        self.observe(event.progress)

    def onQueryIdle(self, event: Any) -> None:
        """Spark 3.5 reports idle triggers separately: still alive."""
        self.write()

    def onQueryTerminated(self, event: Any) -> None:
        """A landing query stopped or failed."""
        for state in self.queries.values():
            if state.get("id") == str(event.id):
                state["state"] = "failed" if event.exception else "stopped"
                state["error"] = (event.exception or "")[:2000] or None
        self.write()


class ProgressRecorder(StreamingQueryListener):
    """Reports each landing query's committed end offsets to the ingest schema, from which
    `GET /ingest/{id}` tells `landed` from `durable` (`dataplatform.db.progress`), with the
    bronze version the query's latest batch appended, from which it tells `curated`."""

    def __init__(self, writer: ProgressWriter) -> None:
        self.writer = writer
        #: Topic -> (topic id, `<domain>.<entity>`), registered as the queries start.
        self.topics: dict[str, tuple[str, str]] = {}
        #: Topic -> its query's batch writer (which knows the bronze version appended).
        self.batches: dict[str, BatchWriter] = {}
        self._reported: dict[tuple[str, int], int] = {}

    def observe(self, progress: Any) -> None:
        """Record the end offsets of a progress report that moved."""
        rows = []
        for source in landing_metrics.progress_sources(progress):
            for topic, partitions in landing_metrics.end_offsets(source).items():
                if topic not in self.topics:
                    continue
                topic_id, entity = self.topics[topic]
                # A report comes after its batch appended: the latest append is its own or a
                # later batch's, never an earlier one (a record is never called curated early).
                batches = self.batches.get(topic)
                bronze = (
                    (None, None)
                    if batches is None
                    else (batches.bronze_table, batches.bronze_version)
                )
                for partition, offset in partitions.items():
                    if self._reported.get((topic, partition)) != offset:
                        rows.append(
                            PartitionProgress(topic_id, topic, entity, partition, offset, *bronze)
                        )
        self.writer.landed(rows)
        for row in rows:
            self._reported[(row.topic, row.partition)] = row.end_offset

    def onQueryStarted(self, event: Any) -> None:
        """Nothing has landed yet."""

    def onQueryProgress(self, event: Any) -> None:
        """A micro-batch was committed (or an idle trigger reported the same offsets)."""
        self.observe(event.progress)

    def onQueryIdle(self, event: Any) -> None:
        """Nothing new."""

    def onQueryTerminated(self, event: Any) -> None:
        """What was committed stays recorded."""


# --------------------------------------------------------------------------- the job


@dataclass
class LandingOptions:
    """How to run the landing queries (defaults from `LakehouseSettings`/`SparkSettings`)."""

    available_now: bool = False
    trigger_interval_s: float | None = None
    starting_offsets: str | None = None
    max_offsets_per_trigger: int | None = None
    topic_prefix: str = ""
    heartbeat_path: Path | None = None
    pause_after_write_s: float = 0.0
    pause_from_batch: int = 0
    #: The run that started the job (an Airflow task), for the lineage parent run facet.
    lineage_parent: ParentRun | None = None
    lineage_root: ParentRun | None = None


def topic_of(entity: Entity, prefix: str) -> str:
    """The Kafka topic an entity is landed from (`prefix` isolates tests' topics)."""
    return f"{prefix}{entity.topic}"


def starting_offsets_for(topic: str, starting_offsets: str) -> str:
    """The `startingOffsets` of one topic's query.

    `earliest`/`latest` apply to every topic. Spark's per-partition JSON
    (`{"<topic>": {"<partition>": <offset>}}`) may name several topics; each query gets its
    own topic's entry (Spark refuses offsets of topics it does not read), or `earliest`.
    """
    if not starting_offsets.lstrip().startswith("{"):
        return starting_offsets
    per_topic = json.loads(starting_offsets)
    if topic not in per_topic:
        return "earliest"
    return json.dumps({topic: per_topic[topic]})


def read_kafka(
    spark: SparkSession,
    topic: str,
    *,
    kafka: KafkaSettings,
    starting_offsets: str,
    max_offsets_per_trigger: int,
) -> DataFrame:
    """The streaming DataFrame of one topic, with headers, failing on lost offsets."""
    client = {f"kafka.{name}": value for name, value in jvm_client_config(kafka).items()}
    return (
        spark.readStream.format("kafka")
        .options(**client)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("includeHeaders", "true")
        # Never skip silently: offsets that went backwards or vanished stop the query.
        .option("failOnDataLoss", "true")
        .option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        # A broker restart takes seconds; keep asking for offsets instead of failing at once.
        .option("fetchOffset.numRetries", "30")
        .option("fetchOffset.retryIntervalMs", "1000")
        .load()
    )


class LandingQuery(NamedTuple):
    """One entity's running landing query."""

    entity: Entity
    query: StreamingQuery
    checkpoint: str
    writer: BatchWriter


def start_landing(
    spark: SparkSession,
    lake: Lake,
    entities: Sequence[Entity],
    options: LandingOptions,
    *,
    recorder: ProgressRecorder,
    receipt_secret: bytes,
    checkpoints: CheckpointThread,
    kafka: KafkaSettings | None = None,
) -> list[LandingQuery]:
    """Create the tables and start one landing query per entity.

    Args:
        spark: The session (with Delta, Kafka and s3a).
        lake: Where the tables and checkpoints are.
        entities: Which entities to land.
        options: Trigger, offsets and test hooks.
        recorder: Reports each query's progress for the receipts; its topics are registered.
        receipt_secret: `RECEIPT_SECRET`, which signs the ingest ids landing computes.
        checkpoints: Writes the tables' Delta checkpoints outside the micro-batches.
        kafka: The brokers; defaults to `KAFKA_*` settings.

    Returns:
        One `LandingQuery` per entity.

    Raises:
        LandingDataLossError: A topic was recreated since its checkpoint was written.
    """
    kafka = kafka or get_kafka_settings()
    settings = get_lakehouse_settings()
    interval = options.trigger_interval_s or get_spark_settings().trigger_interval_s
    started = []
    for entity in entities:
        ensure_landing_tables(spark, lake, entity)
        landing_metrics.declare_entity(entity)
        name = landing_job_name(entity)
        checkpoint = lake.checkpoint(name)
        topic = topic_of(entity, options.topic_prefix)
        guard = TopicGuard(
            spark,
            kafka,
            entity,
            topic,
            checkpoint,
            interval_s=settings.topic_check_interval_s,
            lake=lake,
        )
        guard.start()
        recorder.topics[topic] = (
            url_safe_topic_id(guard.topic_id),
            landing_metrics.entity_label(entity),
        )
        writer = BatchWriter(
            lake,
            entity,
            guard,
            receipt_secret,
            recorder.writer,
            checkpoints,
            pause_after_write_s=options.pause_after_write_s,
            pause_from_batch=options.pause_from_batch,
        )
        recorder.batches[topic] = writer
        stream = read_kafka(
            spark,
            topic,
            kafka=kafka,
            starting_offsets=starting_offsets_for(
                topic, options.starting_offsets or settings.starting_offsets
            ),
            max_offsets_per_trigger=options.max_offsets_per_trigger
            or settings.max_offsets_per_trigger,
        )
        writer_stream = (
            stream.writeStream.queryName(name)
            .option("checkpointLocation", checkpoint)
            .foreachBatch(writer)
        )
        if options.available_now:
            writer_stream = writer_stream.trigger(availableNow=True)
        else:
            writer_stream = writer_stream.trigger(processingTime=f"{interval} seconds")
        query = writer_stream.start()
        writer.query_id = str(query.id)
        writer.started.set()
        logger.info(
            "landing %s -> %s (checkpoint %s, query id %s)",
            topic,
            lake.table("bronze", entity),
            checkpoint,
            query.id,
        )
        started.append(LandingQuery(entity, query, checkpoint, writer))
    return started


def await_landing(
    spark: SparkSession,
    queries: list[LandingQuery],
    *,
    stop_requested: threading.Event,
) -> None:
    """Wait until every query ends (availableNow) or one fails, or a stop is requested.

    Raises:
        LandingDataLossError: A query stopped because offsets went backwards or a topic was
            recreated.
        StreamingQueryException: A query failed for another reason.
    """
    try:
        while any(item.query.isActive for item in queries):
            if stop_requested.is_set():
                logger.info("stop requested: stopping the landing queries")
                break
            for entity, query, checkpoint, _ in queries:
                # Short waits keep the main thread responsive to SIGTERM.
                try:
                    query.awaitTermination(1)
                except StreamingQueryException as exc:
                    raise explain_failure(exc, entity, checkpoint) or exc from exc
        for entity, query, checkpoint, _ in queries:
            error = query.exception()
            if error is not None:
                raise explain_failure(error, entity, checkpoint) or error
    finally:
        for item in queries:
            if item.query.isActive:
                item.query.stop()


def run_landing(
    spark: SparkSession,
    lake: Lake,
    entities: Sequence[Entity],
    options: LandingOptions,
    *,
    kafka: KafkaSettings | None = None,
    stop_requested: threading.Event | None = None,
    lineage: LineageEmitter | None = None,
) -> None:
    """Run the landing job until it ends (availableNow), fails, or `stop_requested` is set.

    With `lineage`, each entity's query is one OpenLineage run of `landing.<domain>.<entity>`:
    START before the query starts, COMPLETE with the records landed when the job stops or
    finishes, FAIL when it fails.

    Args:
        spark: The session (with Delta, Kafka and s3a).
        lake: Where the tables and checkpoints are.
        entities: Which entities to land.
        options: Trigger, offsets and test hooks.
        kafka: The brokers; defaults to `KAFKA_*` settings.
        stop_requested: Set it (e.g. from a signal handler) to stop gracefully.
        lineage: Where the OpenLineage events go (None: no events).

    Raises:
        LandingDataLossError: See `await_landing`.
    """
    kafka = kafka or get_kafka_settings()
    heartbeat = HeartbeatListener(
        options.heartbeat_path or default_heartbeat_path(), lake_prefix=lake.prefix
    )
    heartbeat.write("starting")
    progress = landing_metrics.ProgressMetrics((kafka or get_kafka_settings()).bootstrap_servers)
    receipts = ReceiptSettings()
    recorder = ProgressRecorder(ProgressWriter(get_postgres_settings(), receipts.db_schema))
    spark.streams.addListener(heartbeat)
    spark.streams.addListener(progress)
    spark.streams.addListener(recorder)
    checkpoints = CheckpointThread(
        lake.s3.delta_storage_options(), get_lakehouse_settings().bronze_checkpoint_interval
    )
    checkpoints.start()
    runs: dict[str, JobRun] = {}
    if lineage is not None:
        for entity in entities:
            runs[entity.topic] = landing_run(
                lineage,
                lake,
                kafka,
                entity,
                topic_of(entity, options.topic_prefix),
                parent=options.lineage_parent,
                root=options.lineage_root,
            )
            runs[entity.topic].start()
    try:
        queries = start_landing(
            spark,
            lake,
            entities,
            options,
            recorder=recorder,
            receipt_secret=receipts.key(),
            checkpoints=checkpoints,
            kafka=kafka,
        )
        heartbeat.write("running")
        try:
            await_landing(spark, queries, stop_requested=stop_requested or threading.Event())
        finally:
            # Listeners get progress reports asynchronously: a query that just ended (an
            # availableNow run, a stop) may not have delivered its last one before they are
            # removed, so its last report (committed offsets, rows) is taken from the query.
            for item in queries:
                for listener in (heartbeat, progress, recorder):
                    listener.observe(item.query.lastProgress)
    except BaseException as exc:
        heartbeat.write("failed", error=str(exc)[:2000])
        for run in runs.values():
            run.fail(exc)
        raise
    finally:
        for listener in (heartbeat, progress, recorder):
            spark.streams.removeListener(listener)
        recorder.writer.close()
        checkpoints.stop()
    for item in queries:
        if item.entity.topic in runs:
            _complete_landing_run(runs[item.entity.topic], lake, item, options.topic_prefix)
    heartbeat.write("stopped")


def _complete_landing_run(run: JobRun, lake: Lake, item: LandingQuery, topic_prefix: str) -> None:
    """COMPLETE with the records read from the topic and written to each table."""
    valid, invalid = item.writer.landed["valid"], item.writer.landed["invalid"]
    run.complete(
        {
            topic_of(item.entity, topic_prefix): valid + invalid,
            lake.relative(item.entity.table_path("bronze")): valid,
            quarantine_dataset(lake, item.entity, "landing").name: invalid,
        }
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The landing job's command line."""
    parser = argparse.ArgumentParser(
        prog="landing", description="Kafka -> bronze Delta tables, exactly once."
    )
    parser.add_argument(
        "--entity",
        action="append",
        help="<domain>/<entity> to land, repeatable (default: every entity)",
    )
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="land what is in the topics now, then stop (tests, backfills)",
    )
    parser.add_argument("--trigger-interval-s", type=float, help="default SPARK_TRIGGER_INTERVAL_S")
    parser.add_argument("--starting-offsets", help="for a new checkpoint: earliest|latest|JSON")
    parser.add_argument("--max-offsets-per-trigger", type=int)
    parser.add_argument("--lake-prefix", help="folder in the bucket holding the tables")
    parser.add_argument("--topic-prefix", default="", help="prefix of the topic names (tests)")
    parser.add_argument("--heartbeat-path", type=Path, help="default data/run/landing/...")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of the Prometheus /metrics endpoint; 0: none (default LAKEHOUSE_METRICS_PORT)",
    )
    parser.add_argument(
        "--fault-pause-after-write-s", type=float, default=0.0, help=argparse.SUPPRESS
    )
    parser.add_argument("--fault-pause-from-batch", type=int, default=0, help=argparse.SUPPRESS)
    add_lineage_args(parser)
    return parser.parse_args(argv)


def serve_metrics(port: int | None = None) -> None:
    """Serve the job's Prometheus metrics (`landing_metrics`) on LAKEHOUSE_METRICS_HOST.

    Args:
        port: Overrides LAKEHOUSE_METRICS_PORT; 0 serves nothing (tests that run a landing
            job next to the platform's).
    """
    settings = get_lakehouse_settings()
    port = settings.metrics_port if port is None else port
    if port:
        start_http_server(port, addr=settings.metrics_host)
        logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, port)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `spark-submit pyspark_jobs/landing.py` and `dataplatform run landing`.

    Returns:
        The exit code: 0 when stopped or finished, 1 on failure (the reason is logged).
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # py4j logs every call into the JVM at INFO: a dozen lines per micro-batch.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    stop = stop_on_signals(logger, "stopping (a micro-batch cut short is replayed next time)")
    options = LandingOptions(
        available_now=args.available_now,
        trigger_interval_s=args.trigger_interval_s,
        starting_offsets=args.starting_offsets,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        topic_prefix=args.topic_prefix,
        heartbeat_path=args.heartbeat_path,
        pause_after_write_s=args.fault_pause_after_write_s,
        pause_from_batch=args.fault_pause_from_batch,
        lineage_parent=args.lineage_parent,
        lineage_root=args.lineage_root,
    )
    lineage = None
    try:
        entities = select_entities(args.entity)
        serve_metrics(args.metrics_port)
        spark = start_job_session("landing")
        lake = Lake.load(prefix=args.lake_prefix)
        lineage = LineageEmitter.from_settings(lake)
        run_landing(spark, lake, entities, options, stop_requested=stop, lineage=lineage)
    except LandingDataLossError as exc:
        logger.error("landing stopped: %s", exc)
        return 2
    except Exception:
        logger.exception("landing failed")
        return 1
    finally:
        if lineage is not None:
            lineage.close()
    return 0


if __name__ == "__main__":
    exit_now(main())
