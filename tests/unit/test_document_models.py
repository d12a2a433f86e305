"""Documents: parsing and validation at the edge, and the landing job's ordering rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from fastapi.testclient import TestClient

from dataplatform.documents.curation import claims_with_notes
from dataplatform.documents.landing import SILVER_SCHEMA, GapTracker, latest_versions, to_arrow
from dataplatform.documents.store import INDEXES, StoredDocument
from dataplatform.settings import IngestorSettings
from fastapi_app.app.api.routes.documents import document_receipt
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app
from fastapi_app.app.models import DocumentReceipt
from fastapi_app.app.services.documents import parse_document
from fastapi_app.app.services.errors import InvalidJson, RecordRejected

URL = "/v1/documents"
T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)


def _note(**overrides: Any) -> dict[str, Any]:
    document = {
        "id": "NOTE-1",
        "entity": "claim_note",
        "timestamp": "2024-01-02T09:30:00Z",
        "body": {"claim_id": "IC-1", "text": "photos received"},
    }
    return {**document, **overrides}


def test_parse_document_keeps_body_decimals_as_written() -> None:
    raw = (
        b'{"id": "NOTE-1", "entity": "claim_note", "timestamp": "2024-01-02T09:30:00Z",'
        b' "body": {"claim_id": "IC-1", "estimate": 123456789012.123456, "parts": [0.10, 7]}}'
    )
    parsed = parse_document(raw)
    assert '"estimate":123456789012.123456' in parsed.body_json
    assert '"parts":[0.10,7]' in parsed.body_json
    assert parsed.model.links == {"claim_id": "IC-1", "customer_id": None}


def test_parse_document_same_digest_for_reordered_keys() -> None:
    first = parse_document(json.dumps(_note()).encode())
    reordered = dict(reversed(list(_note().items())))
    second = parse_document(json.dumps(reordered, indent=2).encode())
    assert first.payload_sha256 == second.payload_sha256


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (_note(body={"text": "no claim"}), "body"),
        (_note(entity="memo"), "entity"),
        (_note(id="has space"), "id"),
        (_note(timestamp="yesterday"), "timestamp"),
        (_note(extra=1), "extra"),
        (_note(entity="customer_profile"), "body"),
    ],
)
def test_parse_document_names_bad_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        parse_document(json.dumps(document).encode())
    assert field in caught.value.message


def test_parse_document_refuses_repeated_key() -> None:
    with pytest.raises(RecordRejected, match="more than once"):
        parse_document(b'{"id": "A", "id": "B"}')


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'])
def test_parse_document_refuses_non_object(body: bytes) -> None:
    with pytest.raises(InvalidJson):
        parse_document(body)


def test_parse_document_refuses_deep_body() -> None:
    deep: dict[str, Any] = {"claim_id": "IC-1"}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(RecordRejected, match="deeper"):
        parse_document(json.dumps(_note(body=deep)).encode())


@pytest.fixture
def client() -> Iterator[TestClient]:
    store = MemoryStore()
    settings = IngestorSettings(_env_file=None, auth_enabled=True, max_document_bytes=1024)
    app = create_app(settings, store=store, publisher=MemoryPublisher())
    with TestClient(app, headers={"X-API-Key": store.add_api_key()}) as test_client:
        yield test_client


def test_post_document_bad_input_gets_4xx(client: TestClient) -> None:
    assert client.post(URL, content=b"{").status_code == 400
    too_big = _note(body={"claim_id": "IC-1", "text": "x" * 2000})
    assert client.post(URL, json=too_big).status_code == 413
    rejected = client.post(URL, json=_note(body={}))
    assert rejected.status_code == 422
    assert "claim_id" in rejected.json()["message"]
    assert client.post(URL, content=b"a", headers={"Content-Type": "text/plain"}).status_code == 415


def test_post_document_without_key_gets_401(client: TestClient) -> None:
    response = client.post(URL, json=_note(), headers={"X-API-Key": ""})
    assert response.status_code == 401


def test_post_document_without_store_gets_503(client: TestClient) -> None:
    # No document store configured (an app built with in-memory parts): never a 500.
    response = client.post(URL, json=_note())
    assert response.status_code == 503


def _stored(seq: int, *, document_id: str = "NOTE-1", at: datetime = T0) -> StoredDocument:
    return StoredDocument(
        ingest_id=f"00000000-0000-4000-8000-{seq:012d}",
        ingest_seq=seq,
        entity="claim_note",
        document_id=document_id,
        timestamp=at,
        claim_id="IC-1",
        customer_id=None,
        body_json="{}",
        payload_sha256="",
        principal="key",
        received_at=T0,
    )


def test_landable_stops_at_fresh_gap_and_passes_old_one() -> None:
    gaps = GapTracker(grace_s=30)
    documents = [_stored(1), _stored(2), _stored(4)]
    assert [d.ingest_seq for d in gaps.landable(0, documents, now=100.0)] == [1, 2]
    assert [d.ingest_seq for d in gaps.landable(2, documents[2:], now=120.0)] == []
    assert [d.ingest_seq for d in gaps.landable(2, documents[2:], now=131.0)] == [4]
    assert gaps.first_seen == {}


def test_landable_gap_filled_late_is_landed_in_order() -> None:
    gaps = GapTracker(grace_s=30)
    assert gaps.landable(0, [_stored(2)], now=0.0) == []
    assert [d.ingest_seq for d in gaps.landable(0, [_stored(1), _stored(2)], now=1.0)] == [1, 2]


def test_latest_versions_by_timestamp_then_sequence() -> None:
    later = T0 + timedelta(microseconds=1)
    versions = [
        _stored(1, at=later),
        _stored(2, at=T0),  # sent after, but written earlier: not the latest
        _stored(3, document_id="NOTE-2"),
        _stored(4, document_id="NOTE-2"),  # same timestamp: the later accepted wins
    ]
    latest = {d.document_id: d.ingest_seq for d in latest_versions(versions)}
    assert latest == {"NOTE-1": 1, "NOTE-2": 4}


def test_document_receipt_is_durable_then_landed_with_bronze_version() -> None:
    stored = _stored(3)
    durable = DocumentReceipt.model_validate(
        {"message": "m", **document_receipt(stored, duplicate=False)}
    )
    assert durable.status == "durable"
    assert [stage.stage for stage in durable.stages] == ["accepted", "durable"]
    assert durable.landed_at is None
    landed_at = T0 + timedelta(seconds=5)
    landed = DocumentReceipt.model_validate(
        {
            "message": "m",
            **document_receipt(
                replace(stored, landed_at=landed_at, bronze_version=12), duplicate=False
            ),
        }
    )
    assert landed.status == "landed"
    assert landed.landed_at == landed_at
    assert [(stage.stage, stage.at, stage.where) for stage in landed.stages][-1] == (
        "landed",
        landed_at,
        "bronze Delta table version 12",
    )


def test_indexes_cover_seed_claim_and_time_and_unique_sequence() -> None:
    keys = {index.keys: index.unique for index in INDEXES}
    assert keys[(("ingest_seq", 1),)] is True
    assert (("claim_id", 1),) in keys
    assert (("timestamp", -1),) in keys


def test_claims_with_notes_lists_notes_oldest_first(tmp_path: Path) -> None:
    claims = pa.table(
        {
            "claim_id": ["IC-1", "IC-2"],
            "claim_amount": pa.array([Decimal("2500.000001"), Decimal("1")], pa.decimal128(18, 6)),
        }
    )
    notes = [_stored(1, document_id="NOTE-B", at=T0 + timedelta(days=1)), _stored(2)]
    profile = replace(_stored(3, document_id="P-1"), entity="customer_profile", claim_id=None)
    write_deltalake(str(tmp_path / "claims"), claims)
    write_deltalake(str(tmp_path / "documents"), to_arrow([*notes, profile], SILVER_SCHEMA, T0))
    joined = claims_with_notes(
        DeltaTable(str(tmp_path / "claims")), DeltaTable(str(tmp_path / "documents"))
    ).to_pylist()
    by_claim = {row["claim_id"]: row for row in joined}
    assert by_claim["IC-1"]["claim_amount"] == Decimal("2500.000001")
    assert [n["document_id"] for n in by_claim["IC-1"]["notes"]] == ["NOTE-1", "NOTE-B"]
    assert by_claim["IC-1"]["note_count"] == 2
    assert by_claim["IC-2"]["notes"] is None
    assert by_claim["IC-2"]["note_count"] == 0
