"""The Kafka backup's record lines and manifest, and the order-token headers of a restore."""

from __future__ import annotations

import pytest

from dataplatform.ingest_ids import IngestIds
from dataplatform.kafka_backup import (
    KafkaBackupError,
    Manifest,
    PartitionBackup,
    Record,
    TopicBackup,
    _restored_headers,
    split_uri,
)


def _record(**changes: object) -> Record:
    values: dict[str, object] = {
        "offset": 41,
        "timestamp_type": 1,
        "timestamp_ms": 1764500000123,
        "key": b"FT-0001",
        "value": b'{"amount":123456789012.123456}',
        "headers": (("ingest_id", b"0b7e..."), ("traceparent", None)),
    }
    values.update(changes)
    return Record(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "record",
    [
        _record(),
        _record(key=None, value=None, headers=()),
        _record(value=bytes(range(256)), headers=(("bin", b"\x00\xff"), ("bin", b""))),
    ],
    ids=["plain", "tombstone", "binary-and-repeated-headers"],
)
def test_roundtrip_record_line_exact_bytes(record: Record) -> None:
    assert Record.from_line(record.to_line()) == record


def test_roundtrip_manifest_json() -> None:
    manifest = Manifest(
        taken_at="2026-11-30T19:00:00+00:00",
        topics=[
            TopicBackup(
                "finance.transactions.v1",
                "AAAAAAAAAAAAAAAAAAAAAA",
                2,
                [PartitionBackup(0, 0, 10, 10, "ab" * 32, "k/0.jsonl.gz")],
            )
        ],
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.total_records() == 10


def test_reject_manifest_unknown_format() -> None:
    with pytest.raises(KafkaBackupError, match="unknown Kafka backup format"):
        Manifest.from_json('{"format": 99, "taken_at": "x", "topics": []}')


def test_split_uri_backup_folder_and_manifest() -> None:
    assert split_uri("s3://lakehouse/_backups/kafka/20261130T190000Z/") == (
        "lakehouse",
        "_backups/kafka/20261130T190000Z/",
    )
    assert split_uri("s3://lakehouse/_backups/kafka/x/manifest.json") == (
        "lakehouse",
        "_backups/kafka/x/",
    )
    with pytest.raises(KafkaBackupError, match="starts with s3://"):
        split_uri("/tmp/backup")


IDS = IngestIds(b"backup-test-secret")


def test_add_order_token_landed_record_appends_epoch_and_offset() -> None:
    record = _record()
    assert _restored_headers(record, 2, 3, IDS) == (
        *record.headers,
        ("source_epoch", b"3"),
        ("source_offset", b"41"),
    )


def test_add_order_token_never_landed_keeps_headers() -> None:
    record = _record()
    assert _restored_headers(record, 2, None, IDS) == record.headers


def test_add_order_token_replayed_record_keeps_its_token() -> None:
    record = _record(headers=(("ingest_id", b"x"), ("source_epoch", b"1"), ("source_offset", b"7")))
    assert _restored_headers(record, 2, 3, IDS) == record.headers


def test_restored_headers_signed_record_gets_its_original_ingest_id() -> None:
    headers = (("api_key_id", b"k1d"), ("topic_id", b"3/kU8+eQR/20jN9nXpjZJg"))
    record = _record(headers=headers)

    restored = _restored_headers(record, 2, None, IDS)

    original = IDS.kafka("3/kU8+eQR/20jN9nXpjZJg", 2, 41, 1764500000123, "k1d")
    assert restored == (*headers, ("ingest_id", original.encode()))
    assert IDS.place(original, "k1d") is not None
