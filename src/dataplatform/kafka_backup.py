"""Kafka topic backups to S3 and their replay into a recreated topic, byte for byte.

A backup is a folder `s3://<bucket>/_backups/kafka/<UTC timestamp>/` holding one gzipped JSON
Lines file per partition (`<topic>/<partition>.jsonl.gz`) and a `manifest.json` written last,
so a folder without a manifest is an unfinished backup. Each line is one record: its offset,
timestamp, key, value and headers, the bytes base64-encoded, in offset order. The manifest
states per partition the offsets copied (`low` to `high`, the high watermark read when the
backup started: records produced after that are the backup's recovery point), the record count
and the SHA-256 of the records, plus each topic's id and `min.insync.replicas`.

A restore produces every record again to the same partition of a topic that is missing or
empty (it refuses a topic holding records: the copy would duplicate them), in offset order,
with its key, value, timestamp and headers unchanged, through the platform's idempotent
`acks=all` producer. Records keep their ingest id: the restore adds it as the `ingest_id` header,
computed from the original coordinates, since landing would otherwise derive a new one from the
new offsets; the order token landing gave them (the old topic's epoch and offset) is appended as
the `source_epoch`/`source_offset` headers, the same way `dataplatform lake replay` sends
quarantined records, so the recreated topic's new offsets never reorder versions in silver.
The restore then reads the partitions back and compares every record with the backup, and
records in PostgreSQL which offsets of the lost topic it brought back (`kafka_restores`): a
client resending one of them with its Idempotency-Key gets its original receipt, while a record
acknowledged after the backup and never landed is published again
(`dataplatform.db.progress`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from dataplatform.clients.kafka import client_config, producer_config
from dataplatform.clients.s3 import s3_client
from dataplatform.contracts import ENTITIES
from dataplatform.contracts.bronze import (
    HEADER_INGEST_ID,
    HEADER_KEY_ID,
    HEADER_SOURCE_EPOCH,
    HEADER_SOURCE_OFFSET,
    HEADER_TOPIC_ID,
)
from dataplatform.db.progress import RestoredRange, record_restored
from dataplatform.ingest_ids import IngestIds, url_safe_topic_id
from dataplatform.settings import (
    KafkaSettings,
    PostgresSettings,
    ReceiptSettings,
    S3Settings,
    get_postgres_settings,
)

log = logging.getLogger(__name__)

#: Folder of the Kafka backups inside the lake's bucket.
BACKUP_PREFIX = "_backups/kafka"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
#: Per-request timeout of the admin and consumer calls.
TIMEOUT_S = 30.0


class KafkaBackupError(Exception):
    """A backup or a restore failed; the message says what and how to fix it."""


Header = tuple[str, bytes | None]


@dataclass(frozen=True)
class Record:
    """One Kafka record as a backup keeps it."""

    offset: int
    timestamp_type: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]

    @classmethod
    def from_message(cls, message: Message) -> Record:
        """The record a consumer returned."""
        timestamp_type, timestamp_ms = message.timestamp()
        return cls(
            offset=message.offset() or 0,
            timestamp_type=timestamp_type,
            timestamp_ms=timestamp_ms,
            key=message.key(),
            value=message.value(),
            headers=_headers(message),
        )

    def to_line(self) -> str:
        """One JSON line, the bytes base64-encoded."""
        return json.dumps(
            {
                "offset": self.offset,
                "timestamp": [self.timestamp_type, self.timestamp_ms],
                "key": _b64(self.key),
                "value": _b64(self.value),
                "headers": [[name, _b64(value)] for name, value in self.headers],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_line(cls, line: str) -> Record:
        """The record of one JSON line."""
        item = json.loads(line)
        return cls(
            offset=int(item["offset"]),
            timestamp_type=int(item["timestamp"][0]),
            timestamp_ms=int(item["timestamp"][1]),
            key=_unb64(item["key"]),
            value=_unb64(item["value"]),
            headers=tuple((name, _unb64(value)) for name, value in item["headers"]),
        )

    def content(self) -> Record:
        """The record without its offset: what must be equal after a restore."""
        return Record(0, self.timestamp_type, self.timestamp_ms, self.key, self.value, self.headers)


def _headers(message: Message) -> tuple[Header, ...]:
    """A consumed record's headers, in order (librdkafka gives a list of name/bytes pairs)."""
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (name, value.encode("utf-8") if isinstance(value, str) else value) for name, value in pairs
    )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclass
class PartitionBackup:
    """One partition's part of a backup."""

    partition: int
    low: int
    high: int
    records: int
    sha256: str
    key: str


@dataclass
class TopicBackup:
    """One topic's part of a backup."""

    topic: str
    topic_id: str
    min_insync_replicas: int
    partitions: list[PartitionBackup] = field(default_factory=list)


@dataclass
class Manifest:
    """What a backup holds: written last, read first."""

    taken_at: str
    topics: list[TopicBackup]
    format: int = FORMAT_VERSION

    def to_json(self) -> str:
        """The manifest as indented JSON."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest written by `to_json`."""
        data = json.loads(text)
        if data.get("format") != FORMAT_VERSION:
            raise KafkaBackupError(f"unknown Kafka backup format {data.get('format')!r}")
        topics = [
            TopicBackup(
                topic=item["topic"],
                topic_id=item["topic_id"],
                min_insync_replicas=int(item["min_insync_replicas"]),
                partitions=[PartitionBackup(**part) for part in item["partitions"]],
            )
            for item in data["topics"]
        ]
        return cls(taken_at=data["taken_at"], topics=topics)

    def total_records(self) -> int:
        """Records in the whole backup."""
        return sum(part.records for topic in self.topics for part in topic.partitions)


@dataclass
class RestoreReport:
    """What a restore produced and what the read-back found."""

    topic: str
    records: int
    #: Whether every record got its original offset back (true when the backed-up partitions
    #: started at offset 0 and had no gaps).
    offsets_preserved: bool
    #: The old topic's order-token epoch sent in the headers (None: landing never saw it).
    source_epoch: int | None


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix/` -> (bucket, `prefix/`)."""
    if not uri.startswith("s3://"):
        raise KafkaBackupError(f"a backup URI starts with s3://, got {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    key = key.removesuffix(MANIFEST).strip("/")
    return bucket, f"{key}/" if key else ""


def _describe(admin: AdminClient, topic: str) -> tuple[str, int]:
    """The topic's id and partition count."""
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT_S)
    try:
        description = futures[topic].result()
    except KafkaException as exc:
        raise KafkaBackupError(f"cannot describe topic {topic!r}: {exc}") from None
    return str(description.topic_id), len(description.partitions)


def _min_insync(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result()
    return int(configs["min.insync.replicas"].value)


def _consumer(settings: KafkaSettings) -> Consumer:
    return Consumer(
        {
            **client_config(settings),
            "group.id": f"dataplatform-backup-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )


def read_partition(
    consumer: Consumer, topic: str, partition: int, low: int, high: int
) -> Iterator[Record]:
    """Every record of `topic[partition]` from offset `low` up to (not including) `high`."""
    if high <= low:
        return
    consumer.assign([TopicPartition(topic, partition, low)])
    try:
        while True:
            message = consumer.poll(TIMEOUT_S)
            if message is None:
                raise KafkaBackupError(
                    f"{topic}[{partition}]: no record within {TIMEOUT_S:.0f} s before offset "
                    f"{high}; is the broker up?"
                )
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if (message.offset() or 0) >= high:
                        return
                    continue
                raise KafkaBackupError(f"{topic}[{partition}]: {error.str()}")
            offset = message.offset() or 0
            if offset >= high:
                return
            yield Record.from_message(message)
            if offset + 1 >= high:
                return
    finally:
        consumer.unassign()


def backup_topics(
    *,
    kafka: KafkaSettings,
    s3: S3Settings,
    topics: list[str] | None = None,
    folder: str = BACKUP_PREFIX,
) -> str:
    """Copy every record of `topics` (default: the platform's) to S3; return the backup's URI.

    Args:
        kafka: The cluster.
        s3: The object store; the backup goes to its bucket.
        topics: The topics to copy (default: the platform's).
        folder: Folder of the bucket that holds the backups (tests use their own).

    Raises:
        KafkaBackupError: A topic is missing or a partition cannot be read to its end.
    """
    wanted = topics or [entity.topic for entity in ENTITIES]
    taken_at = datetime.now(UTC)
    prefix = f"{folder.strip('/')}/{taken_at.strftime('%Y%m%dT%H%M%S%fZ')}/"
    admin = AdminClient(client_config(kafka))
    consumer = _consumer(kafka)
    client = s3_client(s3)
    manifest = Manifest(taken_at=taken_at.isoformat(), topics=[])
    try:
        for topic in wanted:
            topic_id, partitions = _describe(admin, topic)
            part_of = TopicBackup(topic, topic_id, _min_insync(admin, topic))
            for partition in range(partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=TIMEOUT_S
                )
                key = f"{prefix}{topic}/{partition}.jsonl.gz"
                with tempfile.TemporaryDirectory() as scratch:
                    path = Path(scratch) / "records.jsonl.gz"
                    digest = hashlib.sha256()
                    count = 0
                    with gzip.open(path, "wt", encoding="utf-8") as out:
                        for record in read_partition(consumer, topic, partition, low, high):
                            line = record.to_line()
                            out.write(line + "\n")
                            digest.update(line.encode("utf-8") + b"\n")
                            count += 1
                    client.upload_file(str(path), s3.bucket, key)
                part_of.partitions.append(
                    PartitionBackup(partition, low, high, count, digest.hexdigest(), key)
                )
                log.info("%s[%d]: %d records (offsets %d..%d)", topic, partition, count, low, high)
            manifest.topics.append(part_of)
    finally:
        consumer.close()
    client.put_object(
        Bucket=s3.bucket,
        Key=f"{prefix}{MANIFEST}",
        Body=manifest.to_json().encode("utf-8"),
        ContentType="application/json",
    )
    return f"s3://{s3.bucket}/{prefix}"


def read_manifest(s3: S3Settings, uri: str) -> Manifest:
    """The manifest of the backup at `uri`.

    Raises:
        KafkaBackupError: There is no manifest (missing or unfinished backup).
    """
    bucket, prefix = split_uri(uri)
    client = s3_client(s3)
    try:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}{MANIFEST}")["Body"].read()
    except client.exceptions.NoSuchKey:
        raise KafkaBackupError(
            f"no {MANIFEST} under {uri}: the backup is missing or did not finish"
        ) from None
    return Manifest.from_json(body.decode("utf-8"))


def latest_backup(s3: S3Settings, *, folder: str = BACKUP_PREFIX) -> str:
    """The URI of the newest finished backup under `folder`.

    Raises:
        KafkaBackupError: There is none.
    """
    client = s3_client(s3)
    paginator = client.get_paginator("list_objects_v2")
    finished = sorted(
        item["Key"]
        for page in paginator.paginate(Bucket=s3.bucket, Prefix=f"{folder.strip('/')}/")
        for item in page.get("Contents", [])
        if item["Key"].endswith(f"/{MANIFEST}")
    )
    if not finished:
        raise KafkaBackupError(f"no finished Kafka backup under s3://{s3.bucket}/{folder}/")
    return f"s3://{s3.bucket}/{finished[-1].removesuffix(MANIFEST)}"


def _backed_up_records(s3: S3Settings, bucket: str, key: str) -> Iterator[Record]:
    client = s3_client(s3)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "records.jsonl.gz"
        client.download_file(bucket, key, str(path))
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                yield Record.from_line(line)


def registered_epoch(s3: S3Settings, topic: str, topic_id: str, *, lake_prefix: str) -> int | None:
    """The order-token epoch landing registered for `topic_id`, if it ever landed it."""
    entity = next((item for item in ENTITIES if item.topic == topic), None)
    if entity is None:
        return None
    from dataplatform.lake import SOURCE_EPOCHS_DIR

    relative = f"{SOURCE_EPOCHS_DIR}/{entity.domain}/{entity.name}.json"
    key = f"{lake_prefix.strip('/')}/{relative}" if lake_prefix.strip("/") else relative
    client = s3_client(s3)
    try:
        body = client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    for item in json.loads(body)["topics"]:
        if item["topic_id"] == topic_id:
            return int(item["epoch"])
    return None


def _restored_headers(
    record: Record, partition: int, epoch: int | None, ids: IngestIds
) -> tuple[Header, ...]:
    """The headers to send: the original ones, plus the ingest id the ingestor gave the record
    (from its original coordinates: the new offset would name another id) and the order token
    landing gave it."""
    found = dict(record.headers)
    extra: list[Header] = []
    key_id, topic_id = found.get(HEADER_KEY_ID), found.get(HEADER_TOPIC_ID)
    if HEADER_INGEST_ID not in found and key_id is not None and topic_id is not None:
        ingest_id = ids.kafka(
            topic_id.decode(), partition, record.offset, record.timestamp_ms, key_id.decode()
        )
        extra.append((HEADER_INGEST_ID, ingest_id.encode()))
    # Never landed, or already a replay that carries its original token: no token to add.
    if epoch is not None and HEADER_SOURCE_EPOCH not in found:
        extra.append((HEADER_SOURCE_EPOCH, str(epoch).encode()))
        extra.append((HEADER_SOURCE_OFFSET, str(record.offset).encode()))
    return (*record.headers, *extra)


def _prepare_topic(admin: AdminClient, consumer: Consumer, backup: TopicBackup) -> None:
    """Create the topic as it was, or accept it if it exists empty with as many partitions."""
    wanted = len(backup.partitions)
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    existing = metadata.topics.get(backup.topic)
    if existing is None:
        future = admin.create_topics(
            [
                NewTopic(
                    backup.topic,
                    num_partitions=wanted,
                    replication_factor=-1,
                    config={"min.insync.replicas": str(backup.min_insync_replicas)},
                )
            ],
            operation_timeout=TIMEOUT_S,
        )[backup.topic]
        future.result()
        return
    if len(existing.partitions) != wanted:
        raise KafkaBackupError(
            f"topic {backup.topic!r} has {len(existing.partitions)} partitions, the backup "
            f"{wanted}: records would land in other partitions; delete the topic first"
        )
    for partition in range(wanted):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(backup.topic, partition), timeout=TIMEOUT_S
        )
        if high > low:
            raise KafkaBackupError(
                f"topic {backup.topic!r} partition {partition} already holds {high - low} "
                "records: restoring would duplicate them; restore into a missing or empty topic"
            )


def restore_topics(
    *,
    kafka: KafkaSettings,
    s3: S3Settings,
    uri: str,
    topics: list[str] | None = None,
    lake_prefix: str = "",
    postgres: PostgresSettings | None = None,
    record_only: bool = False,
) -> list[RestoreReport]:
    """Produce the backup's records again, in order, check them against the backup, then
    record the restored offsets for `Idempotency-Key` replays (`restored_ranges`).

    With `record_only`, nothing is produced: a restore that succeeded but could not record
    (PostgreSQL down) is recorded (its reports are then empty).

    Raises:
        KafkaBackupError: The backup is missing, a topic holds records, a record was not
            acknowledged, the read-back differs from the backup, or the restore could not be
            recorded.
    """
    manifest = read_manifest(s3, uri)
    chosen = [item for item in manifest.topics if topics is None or item.topic in topics]
    missing = set(topics or ()) - {item.topic for item in manifest.topics}
    if missing:
        raise KafkaBackupError(f"the backup at {uri} has no topic {sorted(missing)}")
    bucket, _ = split_uri(uri)
    receipts = ReceiptSettings()
    reports = []
    if not record_only:
        ids = receipts.ids()
        admin = AdminClient(client_config(kafka))
        consumer = _consumer(kafka)
        try:
            for backup in chosen:
                _prepare_topic(admin, consumer, backup)
                epoch = registered_epoch(s3, backup.topic, backup.topic_id, lake_prefix=lake_prefix)
                _produce(kafka, s3, bucket, backup, epoch, ids)
                reports.append(_check(s3, consumer, bucket, backup, epoch, ids))
        finally:
            consumer.close()
    try:
        record_restored(
            postgres or get_postgres_settings(), receipts.db_schema, restored_ranges(chosen)
        )
    except psycopg.Error as exc:
        raise KafkaBackupError(
            f"the records are restored and checked, but recording the restore in PostgreSQL "
            f"failed ({type(exc).__name__}): until it is recorded, a client resending one of "
            "them with its Idempotency-Key gets it published again. Once PostgreSQL answers: "
            f"dataplatform backup kafka-restore {uri} --record-only"
        ) from None
    return reports


def restored_ranges(topics: list[TopicBackup]) -> list[RestoredRange]:
    """The offsets of the backed-up topics (by their ids) that a restore brings back."""
    return [
        RestoredRange(url_safe_topic_id(backup.topic_id), part.partition, part.low, part.high)
        for backup in topics
        for part in backup.partitions
        if part.high > part.low
    ]


def _produce(
    kafka: KafkaSettings,
    s3: S3Settings,
    bucket: str,
    backup: TopicBackup,
    epoch: int | None,
    ids: IngestIds,
) -> None:
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer(producer_config(kafka))
    for part in backup.partitions:
        for record in _backed_up_records(s3, bucket, part.key):
            while True:
                try:
                    producer.produce(
                        backup.topic,
                        value=record.value,
                        key=record.key,
                        partition=part.partition,
                        headers=list(_restored_headers(record, part.partition, epoch, ids)),
                        # 0: no timestamp recorded (type NOT_AVAILABLE): the broker sets one.
                        timestamp=max(record.timestamp_ms, 0),
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(1.0)
            producer.poll(0)
    remaining = producer.flush(TIMEOUT_S * 4)
    if remaining or failures:
        raise KafkaBackupError(
            f"{backup.topic}: {remaining} records not acknowledged, {len(failures)} failed "
            f"({failures[:3]}); the topic is partly restored: delete it and restore again"
        )


def _check(
    s3: S3Settings,
    consumer: Consumer,
    bucket: str,
    backup: TopicBackup,
    epoch: int | None,
    ids: IngestIds,
) -> RestoreReport:
    """Read the restored partitions back and compare each record with the backup's."""
    offsets_preserved = True
    total = 0
    for part in backup.partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(backup.topic, part.partition), timeout=TIMEOUT_S
        )
        if high - low != part.records:
            raise KafkaBackupError(
                f"{backup.topic}[{part.partition}]: {high - low} records after the restore, "
                f"the backup has {part.records}"
            )
        restored = read_partition(consumer, backup.topic, part.partition, low, high)
        digest = hashlib.sha256()
        for original, copy in zip(_backed_up_records(s3, bucket, part.key), restored, strict=True):
            digest.update(original.to_line().encode("utf-8") + b"\n")
            expected = Record(
                0,
                original.timestamp_type,
                original.timestamp_ms,
                original.key,
                original.value,
                _restored_headers(original, part.partition, epoch, ids),
            )
            if copy.content() != expected:
                raise KafkaBackupError(
                    f"{backup.topic}[{part.partition}] offset {copy.offset}: the restored "
                    f"record differs from the backup's record at offset {original.offset}"
                )
            offsets_preserved &= copy.offset == original.offset
            total += 1
        if digest.hexdigest() != part.sha256:
            raise KafkaBackupError(
                f"{backup.topic}[{part.partition}]: the backup file does not match its "
                "manifest's SHA-256 (damaged backup)"
            )
    return RestoreReport(backup.topic, total, offsets_preserved, epoch)
