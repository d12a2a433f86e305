"""The ingestor on the Kafka track, against the real native Postgres and Kafka."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import httpx
import pytest

from dataplatform import samples
from dataplatform.settings import KafkaSettings, PostgresSettings
from fastapi_app.testing import (
    LiveIngestor,
    create_api_key,
    live_ingestor,
    read_partition,
    temporary_schema,
)

TX = "/ingest-financial-transaction/"
CLAIM = "/ingest-insurance-claim/"


@pytest.fixture(scope="module")
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


@pytest.fixture(scope="module")
def ingestor(schema: str, kafka_settings: KafkaSettings) -> Iterator[LiveIngestor]:
    with live_ingestor({"INGESTOR_SINK": "kafka", "INGEST_DB_SCHEMA": schema}) as live:
        yield live


@pytest.fixture(scope="module")
def client(
    ingestor: LiveIngestor, postgres_settings: PostgresSettings, schema: str
) -> Iterator[httpx.Client]:
    key = create_api_key(postgres_settings, schema)
    with httpx.Client(base_url=ingestor.url, headers={"X-API-Key": key}, timeout=30) as http:
        yield http


@pytest.fixture
def rng() -> random.Random:
    return random.Random()


def test_ready_checks_store_and_kafka(client: httpx.Client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"store": "ok", "kafka": "ok"}


def test_post_lands_in_kafka_with_key_and_headers(
    client: httpx.Client, kafka_settings: KafkaSettings, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    trace_id = f"{rng.getrandbits(128):032x}"
    response = client.post(TX, json=record, headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01"})
    assert response.status_code == 200, response.text
    receipt = response.json()
    dest = receipt["destination"]
    assert dest["sink"] == "kafka"
    assert dest["topic"] == "finance.transactions.v1"
    [message, *_] = read_partition(
        kafka_settings, dest["topic"], dest["partition"], start=dest["offset"]
    )
    assert message.offset() == dest["offset"]
    assert message.key() == record["transaction_id"].encode()
    assert json.loads(message.value() or b"") == record
    headers = dict(message.headers() or [])
    assert headers["ingest_id"] == receipt["ingest_id"].encode()
    traceparent = headers["traceparent"]
    assert isinstance(traceparent, bytes)
    assert traceparent.decode().split("-")[1] == trace_id
    assert headers["content-type"] == b"application/json"


def test_five_retries_with_idempotency_key_give_one_receipt_and_one_message(
    client: httpx.Client, kafka_settings: KafkaSettings, rng: random.Random
) -> None:
    record = samples.claim(rng)
    key = f"retry-{rng.getrandbits(64):x}"
    answers = [client.post(CLAIM, json=record, headers={"Idempotency-Key": key}) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    receipts = [a.json() for a in answers]
    assert len({r["ingest_id"] for r in receipts}) == 1
    assert len({json.dumps(r["destination"], sort_keys=True) for r in receipts}) == 1
    dest = receipts[0]["destination"]
    messages = read_partition(
        kafka_settings, dest["topic"], dest["partition"], start=dest["offset"]
    )
    same_key = [m for m in messages if m.key() == record["claim_id"].encode()]
    assert len(same_key) == 1


def test_conflicting_retry_is_409(client: httpx.Client, rng: random.Random) -> None:
    record = samples.transaction(rng)
    key = f"conflict-{rng.getrandbits(64):x}"
    assert client.post(TX, json=record, headers={"Idempotency-Key": key}).status_code == 200
    response = client.post(TX, json={**record, "amount": "1.23"}, headers={"Idempotency-Key": key})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["message"]


def test_exact_duplicate_without_header_and_new_version(
    client: httpx.Client, rng: random.Random
) -> None:
    claim = samples.claim(rng, claim_status="submitted")
    first = client.post(CLAIM, json=claim).json()
    again = client.post(CLAIM, json=claim).json()
    approved = client.post(CLAIM, json={**claim, "claim_status": "approved"}).json()
    assert again["ingest_id"] == first["ingest_id"]
    assert again["duplicate"] is True
    assert approved["ingest_id"] != first["ingest_id"]
    assert approved["duplicate"] is False


def test_receipt_status_says_where_the_record_is(client: httpx.Client, rng: random.Random) -> None:
    receipt = client.post(TX, json=samples.transaction(rng)).json()
    status = client.get(f"/ingest/{receipt['ingest_id']}").json()
    assert status["status"] == "durable"
    assert status["destination"] == receipt["destination"]
    assert [s["stage"] for s in status["stages"]] == ["accepted", "durable"]


def test_ndjson_batch_lands_every_valid_record_in_kafka(
    client: httpx.Client, kafka_settings: KafkaSettings, rng: random.Random
) -> None:
    records = [samples.transaction(rng) for _ in range(20)]
    bad, _, field = samples.invalid("transactions", rng)
    body = "\n".join(json.dumps(r) for r in [*records, bad])
    response = client.post(
        "/v1/transactions/batch", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (20, 1)
    assert field in result["message"]
    for original, item in zip(records, result["results"][:20], strict=True):
        dest = item["receipt"]["destination"]
        [message, *_] = read_partition(
            kafka_settings, dest["topic"], dest["partition"], start=dest["offset"]
        )
        assert message.key() == original["transaction_id"].encode()
        assert dict(message.headers() or [])["ingest_id"] == item["receipt"]["ingest_id"].encode()


def test_unauthenticated_request_is_refused(ingestor: LiveIngestor, rng: random.Random) -> None:
    response = httpx.post(f"{ingestor.url}{TX}", json=samples.transaction(rng))
    assert response.status_code == 401


def test_logs_are_json_with_trace_and_ingest_ids(
    ingestor: LiveIngestor, client: httpx.Client, rng: random.Random
) -> None:
    ingest_id = client.post(TX, json=samples.transaction(rng)).json()["ingest_id"]
    lines = [json.loads(line) for line in ingestor.log_text().splitlines() if line.startswith("{")]
    [entry] = [line for line in lines if line.get("ingest_id") == ingest_id]
    assert len(entry["trace_id"]) == 32
