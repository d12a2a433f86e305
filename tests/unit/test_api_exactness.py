"""Money-grade behaviour of the edge (in-memory store and sink): exact amounts, repeated keys,
out-of-range timestamps, Idempotency-Key state and receipts visible only to their sender."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from dataplatform import samples
from dataplatform.contracts.common import MONEY_TEXT_PATTERN, currency_minor_units
from dataplatform.db.apikeys import PREFIX
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.core.security import ApiKeyAuthenticator
from fastapi_app.app.core.store import StoredApiKey
from fastapi_app.app.main import create_app

TX = "/ingest-financial-transaction/"
CLAIM = "/ingest-insurance-claim/"
TX_BATCH = "/v1/transactions/batch"
JSON = {"Content-Type": "application/json"}


def _client(store: MemoryStore, publisher: MemoryPublisher) -> TestClient:
    app = create_app(IngestorSettings(_env_file=None), store=store, publisher=publisher)
    return TestClient(app, headers={"X-API-Key": store.add_api_key()})


@pytest.fixture
def client(store: MemoryStore, publisher: MemoryPublisher) -> Iterator[TestClient]:
    with _client(store, publisher) as test_client:
        yield test_client


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)


def _raw(record: dict[str, Any], **numbers: str) -> str:
    """`record` as JSON text with `numbers` spliced in as JSON number literals."""
    text = json.dumps({**record, **dict.fromkeys(numbers, "__n__")})
    for name, literal in numbers.items():
        text = text.replace(f'"{name}": "__n__"', f'"{name}": {literal}')
    return text


def test_ingest_amount_with_18_digits_is_forwarded_exactly(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    first = client.post(TX, content=_raw(record, amount="123456789012.123456"), headers=JSON)
    fixed = client.post(TX, content=_raw(record, amount="123456789012.123457"), headers=JSON)
    assert first.status_code == fixed.status_code == 200
    assert fixed.json()["duplicate"] is False
    assert fixed.json()["ingest_id"] != first.json()["ingest_id"]
    values = [m.value for m in publisher.messages]
    assert b'"amount":123456789012.123456' in values[0]
    assert b'"amount":123456789012.123457' in values[1]


@pytest.mark.parametrize("amount", ["1.1000000", "0.0000001", "1234567890123"])
def test_ingest_amount_beyond_decimal_18_6_is_422_naming_amount(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random, amount: str
) -> None:
    response = client.post(TX, content=_raw(samples.transaction(rng), amount=amount), headers=JSON)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "amount"]]
    assert publisher.messages == []


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_ingest_timestamp_outside_utc_range_is_422_not_500(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random, moment: str
) -> None:
    bad = {**samples.transaction(rng), "timestamp": moment}
    single = client.post(TX, json=bad)
    assert single.status_code == 422
    assert single.json()["detail"][0]["loc"] == ["body", "timestamp"]
    batch = client.post(TX_BATCH, json=[samples.transaction(rng), bad])
    assert batch.status_code == 200
    assert [r["outcome"] for r in batch.json()["results"]] == ["accepted", "rejected"]
    assert len(publisher.messages) == 1


def test_ingest_repeated_json_key_is_422_not_last_wins(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    text = _raw(samples.transaction(rng), amount="1")[:-1] + ', "amount": 1000000}'
    response = client.post(TX, content=text, headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "amount"],
            "msg": "the key 'amount' appears more than once in one object",
            "type": "duplicate_key",
        }
    ]
    batch = client.post(TX_BATCH, content=f"[{text}, {json.dumps(samples.transaction(rng))}]")
    results = batch.json()["results"]
    assert batch.status_code == 200
    assert [r["outcome"] for r in results] == ["rejected", "accepted"]
    assert results[0]["errors"][0]["type"] == "duplicate_key"
    assert len(publisher.messages) == 1


@pytest.mark.parametrize("body", ['{"amount": NaN}', '{"amount": Infinity}', '"\\ud800"'])
def test_ingest_non_json_numbers_and_lone_surrogates_are_4xx(
    client: TestClient, publisher: MemoryPublisher, body: str
) -> None:
    response = client.post(TX, content=body, headers=JSON)
    assert response.status_code in (400, 422)
    assert publisher.messages == []


def test_all_rejected_batch_leaves_its_idempotency_key_free(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    good = samples.transaction(rng)
    bad = {**good, "currency": "XXX1"}
    key = {"Idempotency-Key": "fix-and-resend"}
    assert client.post(TX_BATCH, json=[bad], headers=key).status_code == 422
    resent = client.post(TX_BATCH, json=[good], headers=key)
    assert resent.status_code == 200
    assert resent.json()["accepted"] == 1
    assert len(publisher.messages) == 1


def test_idempotency_key_in_progress_is_409_with_retry_after(
    client: TestClient, store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    record = samples.transaction(rng)
    first = client.post(TX, json=record, headers={"Idempotency-Key": "slow"})
    # Put the binding back in the state a request still running holds it in.
    [(bound, (route, sha, _))] = store.idempotency_keys.items()
    store.idempotency_keys[bound] = (route, sha, None)
    response = client.post(TX, json=record, headers={"Idempotency-Key": "slow"})
    assert first.status_code == 200
    assert response.status_code == 409
    assert response.json()["detail"][0]["type"] == "idempotency_key_in_progress"
    assert "Retry-After" in response.headers
    assert len(publisher.messages) == 1


def test_receipt_is_visible_only_to_the_key_that_sent_it(
    store: MemoryStore, publisher: MemoryPublisher, rng: random.Random
) -> None:
    with _client(store, publisher) as owner, _client(store, publisher) as other:
        ingest_id = owner.post(TX, json=samples.transaction(rng)).json()["ingest_id"]
        mine = owner.get(f"/ingest/{ingest_id}")
        theirs = other.get(f"/ingest/{ingest_id}")
    assert mine.status_code == 200
    assert theirs.status_code == 404
    assert theirs.json()["detail"][0]["type"] == "not_found"


class _CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.listings = 0

    async def list_api_keys(self) -> list[StoredApiKey]:
        self.listings += 1
        return await super().list_api_keys()


def test_flood_of_random_api_keys_costs_at_most_one_lookup_per_interval(
    rng: random.Random,
) -> None:
    store = _CountingStore()
    valid = store.add_api_key()
    auth = ApiKeyAuthenticator(store, ttl_s=30, miss_reload_s=0.2)

    async def flood() -> list[object]:
        first = await auth.authenticate(valid)
        forged = [
            f"{PREFIX}_{rng.getrandbits(48):012x}_{rng.getrandbits(128):032x}" for _ in range(1000)
        ]
        return [first, *await asyncio.gather(*(auth.authenticate(key) for key in forged))]

    verdicts = asyncio.run(flood())
    assert verdicts[0] is not None
    assert verdicts[1:] == [None] * 1000
    assert store.listings == 2  # the first snapshot, then one reload for the whole flood


def test_key_created_just_after_a_reload_is_accepted_on_first_use() -> None:
    store = _CountingStore()
    auth = ApiKeyAuthenticator(store, ttl_s=30, miss_reload_s=0.2)

    async def run() -> tuple[object, object]:
        before = await auth.authenticate(f"{PREFIX}_000000000000_{'0' * 32}")
        key = store.add_api_key()  # within the miss interval of the reload just done
        return before, await auth.authenticate(key)

    before, after = asyncio.run(run())
    assert before is None
    assert after is not None


def test_single_record_rejection_is_counted(client: TestClient, rng: random.Random) -> None:
    labels = {"entity": "finance.transactions", "outcome": "rejected"}
    before = REGISTRY.get_sample_value("ingestor_records_total", labels) or 0.0
    assert client.post(TX, json={**samples.transaction(rng), "amount": "-1"}).status_code == 422
    assert REGISTRY.get_sample_value("ingestor_records_total", labels) == before + 1


def test_batch_record_with_integers_beyond_64_bits_is_rejected_not_500(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    # Found by schemathesis: orjson writes back 64-bit integers only.
    huge = '{"customer_id": [{"a": -18235556410362537619488768}], "claim_amount": 1E+42}'
    response = client.post(
        "/v1/claims/batch", content=f"[{huge}, {json.dumps(samples.claim(rng))}]"
    )
    assert response.status_code == 200
    assert [r["outcome"] for r in response.json()["results"]] == ["rejected", "accepted"]
    assert len(publisher.messages) == 1


def test_openapi_states_the_money_and_currency_rules_the_api_enforces(client: TestClient) -> None:
    props = client.get("/openapi.json").json()["components"]["schemas"]["FinancialTransactionIn"][
        "properties"
    ]
    number, text = props["amount"]["anyOf"]
    assert (number["type"], number["minimum"], number["exclusiveMaximum"]) == ("number", 0, 10**12)
    assert text["pattern"] == MONEY_TEXT_PATTERN
    assert props["currency"]["enum"] == sorted(currency_minor_units())


def test_openapi_links_every_receipt_to_its_status(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/ingest/{ingest_id}"]["get"]["operationId"] == "get_receipt"
    pointers = {
        "/ingest-financial-transaction/": "$response.body#/ingest_id",
        "/ingest-insurance-claim/": "$response.body#/ingest_id",
        "/v1/transactions/batch": "$response.body#/results/0/receipt/ingest_id",
        "/v1/claims/batch": "$response.body#/results/0/receipt/ingest_id",
    }
    for path, pointer in pointers.items():
        link = paths[path]["post"]["responses"]["200"]["links"]["GetReceipt"]
        assert link == {
            "operationId": "get_receipt",
            "parameters": {"ingest_id": pointer},
            "description": "Where the record is now.",
        }


def test_amount_as_json_number_with_exponent_is_still_accepted(
    client: TestClient, publisher: MemoryPublisher, rng: random.Random
) -> None:
    # Only the string form is restricted to plain digits; 1E+3 is a valid JSON number.
    response = client.post(TX, content=_raw(samples.transaction(rng), amount="1E+3"), headers=JSON)
    assert response.status_code == 200, response.text
    assert b'"amount":1E+3' in publisher.messages[-1].value
