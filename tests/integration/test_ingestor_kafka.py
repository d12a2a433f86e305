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
    ingest_id_of,
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
    # The receipt is the message's coordinates, signed for the key that sent it.
    assert ingest_id_of(message) == receipt["ingest_id"]
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


def test_resends_without_header_are_all_published_in_order(
    client: httpx.Client, kafka_settings: KafkaSettings, rng: random.Random
) -> None:
    # A -> B -> A with one event time: three versions, in the key's partition, in send order.
    first = samples.claim(rng, claim_status="approved")
    versions = [first, {**first, "claim_status": "rejected"}, first]
    answers = [client.post(CLAIM, json=record).json() for record in versions]
    assert len({a["ingest_id"] for a in answers}) == 3
    assert [a["duplicate"] for a in answers] == [False] * 3
    [partition] = {a["destination"]["partition"] for a in answers}
    offsets = [a["destination"]["offset"] for a in answers]
    assert offsets == sorted(offsets)
    messages = read_partition(
        kafka_settings, answers[0]["destination"]["topic"], partition, start=offsets[0]
    )
    statuses = [
        json.loads(m.value() or b"")["claim_status"]
        for m in messages
        if m.key() == first["claim_id"].encode()
    ]
    assert statuses == ["approved", "rejected", "approved"]


def test_exact_amount_reaches_kafka_with_every_digit(
    client: httpx.Client, kafka_settings: KafkaSettings, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    text = json.dumps({**record, "amount": "__amount__"})
    answers = [
        client.post(
            TX,
            content=text.replace('"__amount__"', amount),
            headers={"Content-Type": "application/json"},
        )
        for amount in ("123456789012.123456", "123456789012.123457")
    ]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert answers[1].json()["duplicate"] is False
    values = []
    for answer in answers:
        dest = answer.json()["destination"]
        [message, *_] = read_partition(
            kafka_settings, dest["topic"], dest["partition"], start=dest["offset"]
        )
        values.append(message.value() or b"")
    assert b'"amount":123456789012.123456' in values[0]
    assert b'"amount":123456789012.123457' in values[1]


def test_idempotency_key_of_a_rejected_request_stays_free(
    client: httpx.Client, rng: random.Random
) -> None:
    good = samples.transaction(rng)
    key = {"Idempotency-Key": f"fix-{rng.getrandbits(64):x}"}
    rejected = client.post("/v1/transactions/batch", json=[{**good, "currency": "ZZ"}], headers=key)
    assert rejected.status_code == 422
    fixed = client.post("/v1/transactions/batch", json=[good], headers=key)
    replay = client.post("/v1/transactions/batch", json=[good], headers=key)
    assert fixed.status_code == replay.status_code == 200, fixed.text
    assert replay.json()["duplicates"] == 1
    ids = [r.json()["results"][0]["receipt"]["ingest_id"] for r in (fixed, replay)]
    assert ids[0] == ids[1]


def test_receipt_of_another_api_key_is_404(
    client: httpx.Client,
    ingestor: LiveIngestor,
    postgres_settings: PostgresSettings,
    schema: str,
    rng: random.Random,
) -> None:
    ingest_id = client.post(TX, json=samples.transaction(rng)).json()["ingest_id"]
    other = create_api_key(postgres_settings, schema)
    response = httpx.get(f"{ingestor.url}/ingest/{ingest_id}", headers={"X-API-Key": other})
    assert response.status_code == 404
    assert client.get(f"/ingest/{ingest_id}").status_code == 200


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
        assert ingest_id_of(message) == item["receipt"]["ingest_id"]


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
