"""`GET /ready` says whether the API can ingest: ready, degraded (store down, Kafka up, keys
cached: 200) or unavailable (503), with the in-memory store and sink."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataplatform import samples
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app

TX = "/ingest-financial-transaction/"


def _client(store: MemoryStore, publisher: MemoryPublisher, **overrides: Any) -> TestClient:
    settings = IngestorSettings(_env_file=None, retry_after_s=4, **overrides)
    app = create_app(settings, store=store, publisher=publisher)
    return TestClient(app, headers={"X-API-Key": store.add_api_key()})


def test_ready_with_store_and_sink_up_is_200_ready() -> None:
    with _client(MemoryStore(), MemoryPublisher()) as client:
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"store": "ok", "memory": "ok"}}


def test_ready_with_store_down_and_keys_cached_is_200_degraded_and_ingest_works() -> None:
    store, publisher, rng = MemoryStore(), MemoryPublisher(), random.Random(5)
    # A TTL of 0: every request finds the snapshot expired and tries to reload it.
    with _client(store, publisher, api_key_cache_ttl_s=0) as client:
        assert client.post(TX, json=samples.transaction(rng)).status_code == 200
        store.available = False
        ready = client.get("/ready")
        ingested = [client.post(TX, json=samples.transaction(rng)) for _ in range(3)]
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "degraded",
        "checks": {"store": "unavailable", "memory": "ok", "api_keys": "cached"},
    }
    assert "Retry-After" not in ready.headers
    # The failed reloads keep the keys loaded before: what /ready promised holds.
    assert [response.status_code for response in ingested] == [200, 200, 200]
    assert len(publisher.messages) == 4


def test_revoked_key_is_refused_at_the_next_request_once_the_snapshot_expired() -> None:
    # Keeping the keys through an outage must not delay a revocation while the store answers:
    # the request that finds the snapshot expired reloads it before it is answered.
    store, publisher, rng = MemoryStore(), MemoryPublisher(), random.Random(6)
    with _client(store, publisher, api_key_cache_ttl_s=0) as client:
        store.available = False
        assert client.post(TX, json=samples.transaction(rng)).status_code == 503  # no snapshot
        store.available = True
        assert client.post(TX, json=samples.transaction(rng)).status_code == 200
        [key_id] = store.api_keys
        store.api_keys[key_id] = replace(store.api_keys[key_id], revoked=True)
        assert client.post(TX, json=samples.transaction(rng)).status_code == 401


def test_ready_with_store_down_and_no_key_loaded_is_503() -> None:
    store = MemoryStore()
    store.available = False
    with _client(store, MemoryPublisher()) as client:
        response = client.get("/ready")
        # Nothing can be authenticated: an ingest would be refused too.
        ingest = client.post(TX, json=samples.transaction(random.Random(1)))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "4"
    assert response.json() == {
        "status": "unavailable",
        "checks": {"store": "unavailable", "memory": "ok", "api_keys": "not loaded"},
    }
    assert ingest.status_code == 503


def test_ready_with_store_down_and_auth_off_is_200_degraded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATAPLATFORM_ENV", "development")
    store = MemoryStore()
    store.available = False
    with _client(store, MemoryPublisher(), auth_enabled=False) as client:
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"store": "unavailable", "memory": "ok"},
    }


def test_ready_with_sink_down_is_503_even_with_store_up() -> None:
    with _client(MemoryStore(), MemoryPublisher(available=False)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["memory"] == "unavailable"


def test_ready_on_starter_track_with_store_down_is_503() -> None:
    # The outbox is in the store: with PostgreSQL down nothing can be made durable.
    store, publisher = MemoryStore(), MemoryPublisher(sink="postgres")
    with _client(store, publisher) as client:
        assert client.post(TX, json=samples.transaction(random.Random(2))).status_code == 200
        store.available = False
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
