"""Ingest behaviour with the in-memory store and publisher: receipts, idempotency, batches,
load shedding, rate limits, auth modes, telemetry and the OpenAPI spec."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from dataplatform import samples
from dataplatform.ingest_ids import KafkaPlace
from dataplatform.settings import IngestorSettings, ReceiptSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.core.store import Candidate, Placement
from fastapi_app.app.main import create_app
from fastapi_app.app.models import (
    BatchIngested,
    ClaimIngested,
    ReceiptStatusOut,
    TransactionIngested,
)

TX = "/ingest-financial-transaction/"
CLAIM = "/ingest-insurance-claim/"
TX_BATCH = "/v1/transactions/batch"
CLAIM_BATCH = "/v1/claims/batch"


def _client(store: MemoryStore, publisher: Any, **overrides: Any) -> TestClient:
    app = create_app(
        IngestorSettings(_env_file=None, **overrides), store=store, publisher=publisher
    )
    return TestClient(app, headers={"X-API-Key": store.add_api_key()})


@pytest.fixture
def client(store: MemoryStore, publisher: MemoryPublisher) -> Iterator[TestClient]:
    with _client(store, publisher) as test_client:
        yield test_client


@pytest.fixture
def rng() -> random.Random:
    return random.Random(42)


# --------------------------------------------------------------------------- single records


def test_ingest_transaction_returns_seed_message_and_receipt(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    response = client.post(TX, json=record)
    assert response.status_code == 200
    body = TransactionIngested.model_validate(response.json())
    assert body.message == "Financial transaction ingested successfully"
    assert body.transaction_id == body.record_key == record["transaction_id"]
    assert body.status == "durable"
    assert not body.duplicate
    [message] = publisher.messages
    assert message.topic == "finance.transactions.v1"
    assert message.key == record["transaction_id"]
    # The receipt is signed for the key that sent it and names where Kafka put the record.
    place = ReceiptSettings().ids().place(body.ingest_id, message.headers["api_key_id"])
    assert isinstance(place, KafkaPlace)
    assert (place.topic_id, place.partition, place.offset) == (
        message.headers["topic_id"],
        0,
        message.offset,
    )
    assert json.loads(message.value) == record
    assert body.destination is not None
    assert body.destination.offset == message.offset


def test_ingest_claim_returns_seed_message_and_receipt(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.claim(rng)
    key = client.headers["X-API-Key"]
    del client.headers["X-API-Key"]
    response = client.post(CLAIM, json=record, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body = ClaimIngested.model_validate(response.json())
    assert body.message == "Insurance claim ingested successfully"
    assert body.claim_id == record["claim_id"]
    assert publisher.messages[0].topic == "insurance.claims.v1"


def test_get_receipt_after_ingest(client: TestClient, rng: random.Random) -> None:
    ingest_id = client.post(TX, json=samples.transaction(rng)).json()["ingest_id"]
    response = client.get(f"/ingest/{ingest_id}")
    assert response.status_code == 200
    status = ReceiptStatusOut.model_validate(response.json())
    assert str(status.ingest_id) == ingest_id
    assert [stage.stage for stage in status.stages] == ["accepted", "durable"]
    assert "finance.transactions.v1" in (status.stages[1].where or "")


def test_get_receipt_forged_or_other_keys_id_is_404(
    client: TestClient, store: MemoryStore, rng: random.Random
) -> None:
    ingest_id = client.post(TX, json=samples.transaction(rng)).json()["ingest_id"]
    forged = ingest_id[:-1] + ("0" if ingest_id[-1] != "0" else "1")
    other_key = {"X-API-Key": store.add_api_key()}

    answers = [
        client.get(f"/ingest/{forged}"),
        client.get(f"/ingest/{ingest_id}", headers=other_key),
    ]

    assert [a.status_code for a in answers] == [404, 404]
    assert all("no record" in a.json()["message"] for a in answers)


def test_forwarded_payload_is_the_parsed_input_not_a_model_dump(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    # Lower-case currency, a float amount and key order are kept as sent (only compacted and
    # key-sorted): the bronze payload is the client's record, not our normalisation of it.
    body = (
        '{"currency": "usd", "amount": 12.5, "transaction_id": "FT-RAW-1", '
        '"timestamp": "2024-01-01T00:00:00", "account_id": "ACC-1", "transaction_type": "debit"}'
    )
    response = client.post(TX, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert publisher.messages[0].value == (
        b'{"account_id":"ACC-1","amount":12.5,"currency":"usd","timestamp":"2024-01-01T00:00:00",'
        b'"transaction_id":"FT-RAW-1","transaction_type":"debit"}'
    )


# --------------------------------------------------------------------------- idempotency


def test_retries_with_idempotency_key_return_same_receipt_and_publish_once(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    answers = [
        client.post(TX, json=record, headers={"Idempotency-Key": "order-1"}).json()
        for _ in range(5)
    ]
    assert {a["ingest_id"] for a in answers} == {answers[0]["ingest_id"]}
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert len(publisher.messages) == 1


def test_idempotency_key_with_different_payload_is_409(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    assert client.post(TX, json=record, headers={"Idempotency-Key": "k-409"}).status_code == 200
    changed = {**record, "amount": "999.99"}
    response = client.post(TX, json=changed, headers={"Idempotency-Key": "k-409"})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["message"]
    assert len(publisher.messages) == 1


def test_idempotency_key_is_per_api_key(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    with _client(store, publisher) as first, _client(store, publisher) as second:
        assert (
            first.post(
                TX, json=samples.transaction(rng), headers={"Idempotency-Key": "shared"}
            ).status_code
            == 200
        )
        response = second.post(
            TX, json=samples.transaction(rng), headers={"Idempotency-Key": "shared"}
        )
    assert response.status_code == 200
    assert len(publisher.messages) == 2


def test_resend_without_header_is_published_again_as_a_new_version(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    # A -> B -> A with one event time: every send is published, so silver can end at A.
    first = samples.claim(rng, claim_status="approved")
    second = {**first, "claim_status": "rejected"}
    answers = [client.post(CLAIM, json=record).json() for record in (first, second, first)]
    assert len({a["ingest_id"] for a in answers}) == 3
    assert [a["duplicate"] for a in answers] == [False, False, False]
    assert [json.loads(m.value)["claim_status"] for m in publisher.messages] == [
        "approved",
        "rejected",
        "approved",
    ]


def test_same_key_different_payload_is_a_new_version(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    claim = samples.claim(rng, claim_status="submitted")
    first = client.post(CLAIM, json=claim).json()
    second = client.post(CLAIM, json={**claim, "claim_status": "approved"}).json()
    assert second["ingest_id"] != first["ingest_id"]
    assert second["record_key"] == first["record_key"]
    assert second["duplicate"] is False
    assert [m.key for m in publisher.messages] == [claim["claim_id"]] * 2


def test_failed_request_frees_its_idempotency_key(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    with _client(store, publisher) as client:
        publisher.available = False
        assert client.post(TX, json=record, headers={"Idempotency-Key": "flaky"}).status_code == 503
        assert store.idempotency_keys == {}
        publisher.available = True
        response = client.post(TX, json=record, headers={"Idempotency-Key": "flaky"})
        replay = client.post(TX, json=record, headers={"Idempotency-Key": "flaky"})
    assert response.status_code == 200
    assert response.json()["status"] == "durable"
    assert response.json()["duplicate"] is False
    assert replay.json()["ingest_id"] == response.json()["ingest_id"]
    assert replay.json()["duplicate"] is True
    assert len(publisher.messages) == 1  # the replay published nothing


# --------------------------------------------------------------------------- batches


def test_batch_json_array_accepts_valid_and_reports_rejected(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    good = [samples.transaction(rng) for _ in range(3)]
    bad, _, field = samples.invalid("transactions", rng)
    response = client.post(TX_BATCH, json=[good[0], bad, good[1], good[2]])
    assert response.status_code == 200
    body = BatchIngested.model_validate(response.json())
    assert (body.received, body.accepted, body.duplicates, body.rejected) == (4, 3, 0, 1)
    assert [r.outcome for r in body.results] == ["accepted", "rejected", "accepted", "accepted"]
    assert body.results[1].errors is not None
    assert body.results[1].errors[0].loc[:2] == ["body", 1]
    assert field in body.message
    assert sorted(m.key for m in publisher.messages) == sorted(r["transaction_id"] for r in good)


def test_batch_ndjson_with_invalid_line(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    claims = [samples.claim(rng) for _ in range(2)]
    body = json.dumps(claims[0]) + "\n{not json\n\n" + json.dumps(claims[1]) + "\n"
    response = client.post(
        CLAIM_BATCH, content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["errors"][0]["type"] == "json_invalid"
    assert len(publisher.messages) == 2


def test_batch_all_rejected_is_422(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    response = client.post(
        TX_BATCH, json=[samples.invalid("transactions", rng)[0] for _ in range(3)]
    )
    assert response.status_code == 422
    assert response.json()["rejected"] == 3
    assert "validation error" in response.json()["message"]
    assert publisher.messages == []


def test_batch_retry_returns_same_receipts(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    records = [samples.transaction(rng) for _ in range(5)]
    first = client.post(TX_BATCH, json=records, headers={"Idempotency-Key": "batch-1"}).json()
    second = client.post(TX_BATCH, json=records, headers={"Idempotency-Key": "batch-1"}).json()
    ids = [r["receipt"]["ingest_id"] for r in first["results"]]
    assert [r["receipt"]["ingest_id"] for r in second["results"]] == ids
    assert second["duplicates"] == 5
    assert len(publisher.messages) == 5
    changed = [*records[:4], {**records[4], "amount": "1.00"}]
    assert (
        client.post(TX_BATCH, json=changed, headers={"Idempotency-Key": "batch-1"}).status_code
        == 409
    )


def test_batch_retry_after_topic_lost_publishes_only_the_vanished_records_again(
    client: TestClient, store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    # A record that landed (or came back with a restore) keeps its receipt; one acknowledged
    # and lost with its topic before landing is published again, once.
    records = [samples.transaction(rng) for _ in range(3)]
    first = client.post(TX_BATCH, json=records, headers={"Idempotency-Key": "lost-1"}).json()
    ids = [r["receipt"]["ingest_id"] for r in first["results"]]
    store.kept = {(m.headers["topic_id"], 0, m.offset) for m in publisher.messages[:2]}
    publisher.topic_ids["finance.transactions.v1"] = "mem-recreated"
    publisher.messages = []

    second = client.post(TX_BATCH, json=records, headers={"Idempotency-Key": "lost-1"}).json()
    again = [r["receipt"]["ingest_id"] for r in second["results"]]
    assert again[:2] == ids[:2]
    assert again[2] != ids[2]
    assert [r["outcome"] for r in second["results"]] == ["duplicate", "duplicate", "accepted"]
    [message] = publisher.messages
    assert message.key == records[2]["transaction_id"]
    assert message.headers["topic_id"] == "mem-recreated"

    # The binding now holds the new receipt: a further retry publishes nothing.
    third = client.post(TX_BATCH, json=records, headers={"Idempotency-Key": "lost-1"}).json()
    assert [r["receipt"]["ingest_id"] for r in third["results"]] == again
    assert third["duplicates"] == 3
    assert len(publisher.messages) == 1


def test_retry_after_topic_lost_when_the_sink_fails_keeps_the_original_receipts(
    client: TestClient, store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    first = client.post(TX, json=record, headers={"Idempotency-Key": "lost-2"}).json()
    publisher.topic_ids["finance.transactions.v1"] = "mem-recreated"
    publisher.available = False
    response = client.post(TX, json=record, headers={"Idempotency-Key": "lost-2"})
    assert response.status_code == 503
    publisher.available = True
    # The binding is back to its original receipts (not freed): the next retry republishes.
    second = client.post(TX, json=record, headers={"Idempotency-Key": "lost-2"}).json()
    assert second["ingest_id"] != first["ingest_id"]
    assert not second["duplicate"]
    assert [m.headers["topic_id"] for m in publisher.messages] == [
        "mem-finance-transactions-v1",
        "mem-recreated",
    ]


def test_batch_with_the_same_record_twice_publishes_both(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    response = client.post(TX_BATCH, json=[record, record])
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["accepted", "accepted"]
    assert results[0]["receipt"]["ingest_id"] != results[1]["receipt"]["ingest_id"]
    assert len(publisher.messages) == 2


# --------------------------------------------------------------------------- failure and load


def test_sink_down_is_503_with_retry_after(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    publisher.available = False
    with _client(store, publisher, retry_after_s=3) as client:
        response = client.post(TX, json=samples.transaction(rng))
        ready = client.get("/ready")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert "sink is unavailable" in response.json()["message"]
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"store": "ok", "memory": "unavailable"}
    # The cause is logged, never shown (/ready answers without a key).
    for answer in (response, ready):
        assert "switched off" not in answer.text
        assert "SinkUnavailable" not in answer.text


def test_store_down_keyed_request_is_503_unkeyed_one_is_served(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    with _client(store, publisher) as client:
        # Authenticates once: the key is cached from here on.
        assert client.post(TX, json=samples.transaction(rng)).status_code == 200
        store.available = False
        keyed = client.post(TX, json=samples.transaction(rng), headers={"Idempotency-Key": "k"})
        unkeyed = client.post(TX, json=samples.transaction(rng))
    assert keyed.status_code == 503
    assert "Retry-After" in keyed.headers
    # No row per record: without an Idempotency-Key the store is not needed at all.
    assert unkeyed.status_code == 200
    assert len(publisher.messages) == 2


class _HangingPublisher(MemoryPublisher):
    async def publish(
        self, records: list[Candidate], *, key_id: str, traceparent: str
    ) -> list[Placement]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def test_sink_that_never_answers_gets_503_within_timeout(
    store: MemoryStore, rng: random.Random
) -> None:
    with _client(store, _HangingPublisher(), sink_timeout_s=0.2) as client:
        response = client.post(TX, json=samples.transaction(rng))
    assert response.status_code == 503
    assert "did not acknowledge" in response.json()["message"]


def test_over_inflight_bound_sheds_load_with_503(store: MemoryStore, rng: random.Random) -> None:
    # A batch larger than the in-flight bound can never be admitted: shed at once.
    with _client(store, _HangingPublisher(), max_inflight_records=2) as client:
        response = client.post(TX_BATCH, json=[samples.transaction(rng) for _ in range(3)])
    assert response.status_code == 503
    assert "capacity" in response.json()["message"]


def test_rate_limit_is_429_with_retry_after(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    with _client(store, publisher, rate_limit_per_s=0.5, rate_limit_burst=2) as client:
        codes = [client.post(TX, json=samples.transaction(rng)).status_code for _ in range(3)]
        limited = client.post(TX, json=samples.transaction(rng))
    assert codes == [200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "rate limit" in limited.json()["message"]


def test_per_key_rate_limit_overrides_default(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    app = create_app(
        IngestorSettings(_env_file=None, rate_limit_per_s=0.001, rate_limit_burst=1),
        store=store,
        publisher=publisher,
    )
    unlimited = store.add_api_key(rate_limit_per_s=0)
    with TestClient(app, headers={"X-API-Key": unlimited}) as client:
        codes = {client.post(TX, json=samples.transaction(rng)).status_code for _ in range(5)}
    assert codes == {200}


# --------------------------------------------------------------------------- auth modes


def test_auth_cannot_be_disabled_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPLATFORM_ENV", "production")
    with pytest.raises(ValidationError, match="only allowed with DATAPLATFORM_ENV=development"):
        IngestorSettings(_env_file=None, auth_enabled=False)


def test_auth_disabled_logs_warning_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, rng: random.Random
) -> None:
    monkeypatch.setenv("DATAPLATFORM_ENV", "development")
    app = create_app(
        IngestorSettings(_env_file=None, auth_enabled=False),
        store=MemoryStore(),
        publisher=MemoryPublisher(),
    )
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        assert client.post(TX, json=samples.transaction(rng)).status_code == 200
    assert any("authentication is DISABLED" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["/", "/health", "/ready", "/metrics", "/docs", "/openapi.json"])
def test_public_endpoints_need_no_key(
    store: MemoryStore, publisher: MemoryPublisher, path: str
) -> None:
    app = create_app(IngestorSettings(_env_file=None), store=store, publisher=publisher)
    with TestClient(app) as client:
        assert client.get(path).status_code == 200


def test_receipts_need_a_key(store: MemoryStore, publisher: MemoryPublisher) -> None:
    app = create_app(IngestorSettings(_env_file=None), store=store, publisher=publisher)
    with TestClient(app) as client:
        assert client.get("/ingest/00000000-0000-4000-8000-000000000000").status_code == 401


# --------------------------------------------------------------------------- telemetry, spec


def test_traceparent_is_continued_to_the_sink(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert (
        client.post(TX, json=samples.transaction(rng), headers={"traceparent": parent}).status_code
        == 200
    )
    sent = publisher.messages[0].headers["traceparent"].split("-")
    assert sent[1] == "0af7651916cd43dd8448eb211c80319c"
    assert sent[2] != "b7ad6b7169203331"  # our own span, child of the client's


def test_request_without_traceparent_starts_a_trace(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    client.post(TX, json=samples.transaction(rng), headers={"traceparent": "garbage"})
    version, trace_id, span_id, flags = publisher.messages[0].headers["traceparent"].split("-")
    assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "01")


def test_metrics_count_requests_records_and_batches(client: TestClient, rng: random.Random) -> None:
    client.post(TX_BATCH, json=[samples.transaction(rng) for _ in range(4)])
    client.post(TX, json=samples.invalid("transactions", rng)[0])
    text = client.get("/metrics").text
    assert (
        'ingestor_http_requests_total{method="POST",route="/v1/transactions/batch",status="200"}'
        in text
    )
    assert (
        'ingestor_http_requests_total{method="POST",route="/ingest-financial-transaction/",status="422"}'
        in text
    )
    assert 'ingestor_records_total{entity="finance.transactions",outcome="accepted"}' in text
    assert 'ingestor_batch_records_count{entity="finance.transactions"}' in text
    assert "ingestor_http_request_duration_seconds_bucket" in text


def test_openapi_documents_contracts_security_limits_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"FinancialTransactionIn", "InsuranceClaimIn", "ErrorResponse"} <= set(schemas)
    single = spec["paths"]["/ingest-financial-transaction/"]["post"]
    assert single["requestBody"]["content"]["application/json"]["example"]["transaction_id"]
    assert {"ApiKeyHeader": []} in single["security"]
    assert {"200", "400", "401", "409", "413", "415", "422", "429", "503"} <= set(
        single["responses"]
    )
    batch = spec["paths"]["/v1/claims/batch"]["post"]["requestBody"]["content"]
    assert (
        batch["application/json"]["schema"]["maxItems"]
        == IngestorSettings(_env_file=None).max_batch_records
    )
    assert "application/x-ndjson" in batch
    assert spec["paths"]["/ingest/{ingest_id}"]["get"]["security"]


def test_workers_share_the_rate_limits_and_bounds() -> None:
    settings = IngestorSettings(
        _env_file=None,
        workers=4,
        rate_limit_per_s=1000,
        rate_limit_burst=10,
        max_inflight_records=10000,
        max_concurrency=256,
        max_connections=4096,
    )
    share = settings.worker_share()
    assert (share.rate_limit_per_s, share.rate_limit_burst) == (250, 2)
    assert (share.max_inflight_records, share.max_concurrency, share.max_connections) == (
        2500,
        64,
        1024,
    )
    assert IngestorSettings(_env_file=None).worker_share() == IngestorSettings(_env_file=None)


def test_a_keys_own_rate_limit_is_shared_by_the_workers(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    # 4 req/s for the key over 2 workers: this worker admits 2 req/s, and its burst share is 1.
    app = create_app(
        IngestorSettings(_env_file=None, workers=2, rate_limit_burst=2),
        store=store,
        publisher=publisher,
    )
    key = store.add_api_key(rate_limit_per_s=4)
    with TestClient(app, headers={"X-API-Key": key}) as client:
        codes = [client.post(TX, json=samples.transaction(rng)).status_code for _ in range(2)]
        retry_after = client.post(TX, json=samples.transaction(rng)).headers.get("Retry-After")
    assert codes == [200, 429]
    assert retry_after is not None
