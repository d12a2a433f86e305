"""Bad input: each kind gets its documented status and a message naming the problem."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataplatform import samples
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app

TX = "/ingest-financial-transaction/"
CLAIM = "/ingest-insurance-claim/"
TX_BATCH = "/v1/transactions/batch"


@pytest.fixture
def client(store: MemoryStore, publisher: MemoryPublisher) -> Iterator[TestClient]:
    settings = IngestorSettings(
        _env_file=None,
        auth_enabled=True,
        max_record_bytes=2048,
        max_batch_bytes=64 * 1024,
        max_batch_records=10,
    )
    app = create_app(settings, store=store, publisher=publisher)
    with TestClient(app, headers={"X-API-Key": store.add_api_key()}) as test_client:
        yield test_client


def _transaction(**overrides: Any) -> dict[str, Any]:
    return samples.transaction(random.Random(7), **overrides)


def _named_fields(response: Any) -> set[str]:
    return {".".join(str(p) for p in item["loc"][1:]) for item in response.json()["detail"]}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": "not-a-number"}, "amount"),
        ({"amount": "-0.01"}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": "+1.00"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": " 125.50"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "Infinity"}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"timestamp": "invalid-date"}, "timestamp"),
        ({"timestamp": "2024-02-30T10:00:00Z"}, "timestamp"),
        ({"timestamp": "2024-01-01T25:00:00"}, "timestamp"),
        ({"account_id": 12345}, "account_id"),
        ({"account_id": ["ACC-1"]}, "account_id"),
        ({"transaction_id": "has spaces"}, "transaction_id"),
        ({"transaction_type": "gift"}, "transaction_type"),
        ({"unexpected": "field"}, "unexpected"),
    ],
)
def test_ingest_transaction_invalid_field_is_named(
    client: TestClient, publisher: MemoryPublisher, overrides: dict[str, Any], field: str
) -> None:
    response = client.post(TX, json=_transaction(**overrides))
    assert response.status_code == 422
    body = response.json()
    assert "validation error" in body["message"]
    assert field in body["message"]
    assert _named_fields(response) == {field}
    assert publisher.messages == []


@pytest.mark.parametrize(
    "field", ["transaction_id", "timestamp", "account_id", "amount", "currency", "transaction_type"]
)
def test_ingest_transaction_missing_field_is_named(client: TestClient, field: str) -> None:
    record = _transaction()
    del record[field]
    response = client.post(TX, json=record)
    assert response.status_code == 422
    assert _named_fields(response) == {field}
    assert response.json()["detail"][0]["type"] == "missing"


def test_ingest_claim_every_bad_field_is_named(client: TestClient) -> None:
    record = samples.claim(random.Random(3), claim_amount="lots", claim_type="pet")
    del record["customer_id"]
    response = client.post(CLAIM, json=record)
    assert response.status_code == 422
    assert _named_fields(response) == {"claim_amount", "claim_type", "customer_id"}
    assert response.json()["message"].startswith("3 validation errors for InsuranceClaimIn")


@pytest.mark.parametrize(
    ("timestamp", "stored"),
    [
        ("2024-05-01T10:11:12", "2024-05-01T10:11:12"),  # naive: accepted, read as UTC
        ("2024-05-01T12:11:12+02:00", "2024-05-01T12:11:12+02:00"),
    ],
)
def test_ingest_transaction_timestamps_with_and_without_offset_accepted(
    client: TestClient, publisher: MemoryPublisher, timestamp: str, stored: str
) -> None:
    response = client.post(TX, json=_transaction(timestamp=timestamp))
    assert response.status_code == 200, response.text
    # Forwarded as the client sent it; the contract reads both as the same UTC instant.
    assert json.loads(publisher.messages[-1].value)["timestamp"] == stored


def test_ingest_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        TX, content=b'{"transaction_id": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


def test_ingest_non_object_body_is_422(client: TestClient) -> None:
    response = client.post(TX, json=[1, 2])
    assert response.status_code == 422
    assert "validation error" in response.json()["message"]


def test_ingest_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        TX, content=json.dumps(_transaction()), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "Content-Type" in response.json()["message"]
    response = client.post(TX_BATCH, content="a,b\n1,2", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415
    assert "application/x-ndjson" in response.json()["message"]


def test_ingest_oversized_body_is_413_before_parsing(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    record = _transaction(category="x" * 4000)
    response = client.post(TX, json=record)
    assert response.status_code == 413
    assert "limit of 2048 bytes" in response.json()["message"]
    # Not even parsed: an invalid body of the same size gets 413, not 400.
    response = client.post(TX, content=b"{" * 3000, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert publisher.messages == []


def test_ingest_oversized_chunked_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 100

    response = client.post(TX, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "more than" in response.json()["message"]


def test_ingest_batch_too_many_records_is_413(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    rng = random.Random(1)
    response = client.post(TX_BATCH, json=[samples.transaction(rng) for _ in range(11)])
    assert response.status_code == 413
    assert "limit is 10 per request" in response.json()["message"]
    assert publisher.messages == []


def test_ingest_batch_oversized_record_is_413(client: TestClient) -> None:
    rng = random.Random(1)
    records = [samples.transaction(rng), samples.transaction(rng, category="y" * 3000)]
    body = "\n".join(json.dumps(r) for r in records)
    response = client.post(TX_BATCH, content=body, headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 413
    assert "record 1" in response.json()["message"]


def test_ingest_batch_oversized_body_is_413(client: TestClient) -> None:
    response = client.post(
        TX_BATCH, content=b"[" + b" " * 70000 + b"]", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_ingest_batch_not_an_array_is_400(client: TestClient) -> None:
    response = client.post(TX_BATCH, json=_transaction())
    assert response.status_code == 400
    assert "array" in response.json()["message"]


def test_ingest_batch_empty_is_422(client: TestClient) -> None:
    response = client.post(TX_BATCH, json=[])
    assert response.status_code == 422
    assert "no records" in response.json()["message"]


def test_ingest_without_api_key_is_401(client: TestClient, publisher: MemoryPublisher) -> None:
    response = client.post(TX, json=_transaction(), headers={"X-API-Key": ""})
    assert response.status_code == 401
    assert "missing API key" in response.json()["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert publisher.messages == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "dpk_000000000000_notthesecretatall000"},
        {"X-API-Key": "garbage"},
        {"X-API-Key": "", "Authorization": "Bearer dpk_nope_nopenopenopenopenope"},
        {"X-API-Key": "", "Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_ingest_with_invalid_api_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(TX, json=_transaction(), headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json()["message"]


def test_ingest_with_revoked_api_key_is_401(store: MemoryStore) -> None:
    key = store.add_api_key()
    key_id = key.split("_")[1]
    stored = store.api_keys[key_id]
    store.api_keys[key_id] = type(stored)(stored.key_id, stored.secret_sha256, None, revoked=True)
    app = create_app(IngestorSettings(_env_file=None), store=store, publisher=MemoryPublisher())
    with TestClient(app) as client:
        response = client.post(TX, json=_transaction(), headers={"X-API-Key": key})
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_ingest_invalid_idempotency_key_header_is_422(client: TestClient) -> None:
    response = client.post(TX, json=_transaction(), headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["message"]


def test_get_receipt_with_malformed_id_is_422(client: TestClient) -> None:
    response = client.get("/ingest/not-a-uuid")
    assert response.status_code == 422
    assert "ingest_id" in response.json()["message"]
