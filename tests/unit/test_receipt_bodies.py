"""`GET /ingest/{id}` past `landed`: `curated` from curation's progress and `lost` when the
record's topic was recreated before landing reached it (in-memory store and publisher)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from dataplatform import samples
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.core.store import Whereabouts
from fastapi_app.app.main import create_app
from fastapi_app.app.models import ReceiptStatusOut
from fastapi_app.app.services import ingest

TX = "/ingest-financial-transaction/"
T0 = datetime(2026, 12, 1, tzinfo=UTC)
TOPIC = "finance.transactions.v1"


@pytest.fixture
def client(store: MemoryStore, publisher: MemoryPublisher) -> Iterator[TestClient]:
    app = create_app(IngestorSettings(_env_file=None), store=store, publisher=publisher)
    with TestClient(app, headers={"X-API-Key": store.add_api_key()}) as test_client:
        yield test_client


#: The record every test sends (with the Idempotency-Key `stages-1`).
RECORD = samples.transaction(random.Random(7))


def _sent(client: TestClient) -> str:
    response = client.post(TX, json=RECORD, headers={"Idempotency-Key": "stages-1"})
    assert response.status_code == 200, response.text
    return str(response.json()["ingest_id"])


def _status(client: TestClient, ingest_id: str) -> ReceiptStatusOut:
    response = client.get(f"/ingest/{ingest_id}")
    assert response.status_code == 200, response.text
    return ReceiptStatusOut.model_validate(response.json())


def test_receipt_is_curated_once_curation_processed_its_bronze_version(
    client: TestClient, store: MemoryStore
) -> None:
    ingest_id = _sent(client)
    landed = Whereabouts(
        entity="finance.transactions", landed_at=T0, bronze_table="s3://l/b", bronze_version=3
    )
    store.known[ingest_id] = landed
    assert _status(client, ingest_id).status == "landed"

    store.known[ingest_id] = Whereabouts(
        entity="finance.transactions",
        landed_at=T0,
        bronze_table="s3://l/b",
        bronze_version=3,
        curated_at=T0 + timedelta(minutes=5),
    )
    status = _status(client, ingest_id)
    assert status.status == "curated"
    assert [(s.stage, s.at) for s in status.stages][-2:] == [
        ("landed", T0),
        ("curated", T0 + timedelta(minutes=5)),
    ]
    assert status.hint is None


def test_receipt_of_a_record_lost_with_its_topic_says_lost_with_the_resend_hint(
    client: TestClient,
    store: MemoryStore,
    publisher: MemoryPublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest_id = _sent(client)
    monkeypatch.setattr(ingest, "LOST_AFTER_S", 0.0)
    # The topic still has the id the record was published under: only durable.
    assert _status(client, ingest_id).status == "durable"

    publisher.topic_ids[TOPIC] = "mem-recreated"
    status = _status(client, ingest_id)
    assert status.status == "lost"
    assert status.hint is not None and "same Idempotency-Key" in status.hint
    assert [s.stage for s in status.stages] == ["accepted", "durable"]

    # Resending with the same key publishes it again: the new receipt is durable.
    response = client.post(TX, json=RECORD, headers={"Idempotency-Key": "stages-1"})
    assert response.status_code == 200, response.text
    again = response.json()
    assert again["ingest_id"] != ingest_id and not again["duplicate"]
    assert _status(client, again["ingest_id"]).status == "durable"


def test_receipt_is_not_lost_when_restored_landed_or_too_recent(
    client: TestClient,
    store: MemoryStore,
    publisher: MemoryPublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest_id = _sent(client)
    [message] = publisher.messages
    publisher.topic_ids[TOPIC] = "mem-recreated"
    # Younger than LOST_AFTER_S: another worker may not know a new topic's id yet.
    assert _status(client, ingest_id).status == "durable"

    monkeypatch.setattr(ingest, "LOST_AFTER_S", 0.0)
    # A Kafka restore brought it back (`kafka_restores`): waiting for landing again.
    store.kept = {(message.headers["topic_id"], 0, message.offset)}
    assert _status(client, ingest_id).status == "durable"

    store.kept = set()
    store.known[ingest_id] = Whereabouts(entity="finance.transactions", landed_at=T0)
    assert _status(client, ingest_id).status == "landed"


def test_quarantined_record_stays_landed(client: TestClient, store: MemoryStore) -> None:
    ingest_id = _sent(client)
    # The store never reports a quarantined record curated; the answer names the reason.
    store.known[ingest_id] = Whereabouts(
        entity="finance.transactions", landed_at=T0, quarantine_reason="amount: not a number"
    )
    status = _status(client, ingest_id)
    assert (status.status, status.quarantine_reason) == ("landed", "amount: not a number")
    assert status.stages[-1].where == "quarantine: amount: not a number"


def test_record_curation_quarantined_is_not_curated_and_gives_the_reason(
    client: TestClient, store: MemoryStore
) -> None:
    ingest_id = _sent(client)
    reason = "failed expectation(s): event_time_not_in_future"
    store.known[ingest_id] = Whereabouts(
        entity="finance.transactions",
        landed_at=T0,
        bronze_table="s3://l/b",
        bronze_version=3,
        quarantine_reason=reason,
        quarantined_by="curation",
        curated_at=T0 + timedelta(minutes=5),
    )
    status = _status(client, ingest_id)
    assert (status.status, status.quarantine_reason) == ("landed", reason)
    assert [(s.stage, s.at, s.where) for s in status.stages][-2:] == [
        ("landed", T0, "bronze Delta table"),
        ("curated", T0 + timedelta(minutes=5), f"quarantine: {reason}"),
    ]
