"""The seed's own unit-test expectations, against the real app with in-memory parts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app

SEED_INVALID = {
    "transaction_id": "FT-001",
    "timestamp": "invalid-date",
    "account_id": "ACC-XYZ",
    "amount": "not-a-number",
    "currency": "USD",
    "transaction_type": "debit",
}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    # The seed's test sends no API key: run it the one way that allows, development mode
    # with auth switched off.
    monkeypatch.setenv("DATAPLATFORM_ENV", "development")
    settings = IngestorSettings(_env_file=None, auth_enabled=False)
    app = create_app(settings, store=MemoryStore(), publisher=MemoryPublisher())
    with TestClient(app) as test_client:
        yield test_client


def test_read_main(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.json() == {"message": "Welcome to Financial/Insurance Data Ingestor API!"}


def test_ingest_financial_transaction_invalid_data(client: TestClient) -> None:
    response = client.post("/ingest-financial-transaction/", json=SEED_INVALID)
    assert response.status_code == 422
    assert "validation error" in response.text
    fields = {tuple(item["loc"]) for item in response.json()["detail"]}
    assert fields == {("body", "timestamp"), ("body", "amount")}


def test_ingest_seed_payloads_accepted(client: TestClient) -> None:
    # What the seed's integration test and locust file send: naive timestamps, float amounts,
    # JPY with cents, `payment`, `life`/`property` claims, a null merchant_id.
    transaction = {
        "transaction_id": "INT-001",
        "timestamp": "2024-05-01T10:11:12.123456",
        "account_id": "ACC-INT-001",
        "amount": 123.45,
        "currency": "JPY",
        "transaction_type": "payment",
        "merchant_id": None,
        "category": "groceries",
    }
    response = client.post("/ingest-financial-transaction/", json=transaction)
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Financial transaction ingested successfully"
    assert response.json()["transaction_id"] == "INT-001"
    claim = {
        "claim_id": "IC-20240501101112123456-1234",
        "timestamp": "2024-05-01T10:11:12.123456",
        "policy_number": "POL-1234567",
        "claim_amount": 2500.5,
        "claim_type": "life",
        "claim_status": "under_review",
        "customer_id": "CUST-12345",
        "incident_date": "2024-03-01T08:00:00",
    }
    response = client.post("/ingest-insurance-claim/", json=claim)
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Insurance claim ingested successfully"
    assert response.json()["claim_id"] == claim["claim_id"]


def test_seed_style_client_without_lifespan_gets_422(monkeypatch: pytest.MonkeyPatch) -> None:
    # The seed builds `TestClient(app)` without entering it (no lifespan): validation still
    # answers before the sink is needed.
    monkeypatch.setenv("DATAPLATFORM_ENV", "development")
    app = create_app(IngestorSettings(_env_file=None, auth_enabled=False))
    client = TestClient(app)
    assert client.get("/").json() == {
        "message": "Welcome to Financial/Insurance Data Ingestor API!"
    }
    response = client.post("/ingest-financial-transaction/", json=SEED_INVALID)
    assert response.status_code == 422
    assert "validation error" in response.text
