"""Outages under a Kafka-track ingestor: Kafka stopped during a load (503s without hanging,
nothing acknowledged lost); PostgreSQL stopped (`/ready` degraded, unkeyed ingest served)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataplatform import samples
from dataplatform.settings import KafkaSettings, PostgresSettings
from fastapi_app.testing import (
    create_api_key,
    ingest_id_of,
    live_ingestor,
    read_partition,
    temporary_schema,
)

TX = "/ingest-financial-transaction/"
SINK_TIMEOUT_S = 3


def _supervisorctl(*args: str) -> None:
    cli = Path(sys.executable).parent / "dataplatform"
    subprocess.run([str(cli), "supervisorctl", *args], check=True, capture_output=True, timeout=120)


def _wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s}s")
        time.sleep(0.2)


def _ingestor_env(schema: str, **extra: str) -> dict[str, str]:
    return {
        "INGESTOR_SINK": "kafka",
        "INGEST_DB_SCHEMA": schema,
        "INGESTOR_SINK_TIMEOUT_S": str(SINK_TIMEOUT_S),
        **extra,
    }


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/ready", timeout=30)


def _wait_until_ready_says(url: str, status: str, *, timeout_s: float) -> None:
    _wait_for(
        lambda: _ready(url).json()["status"] == status,
        timeout_s=timeout_s,
        what=f"/ready to say {status}",
    )


@pytest.fixture
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


class _Load:
    """Client threads posting unique transactions until stopped, recording every answer."""

    def __init__(self, url: str, key: str, threads: int) -> None:
        self.acked: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.outcomes: Counter[str] = Counter()
        self.missing_retry_after = 0
        self._url = url
        self._key = key
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def count(self, outcome: str) -> int:
        with self._lock:
            return self.outcomes[outcome]

    def _run(self) -> None:
        rng = random.Random()
        # Far above the server's own bound (sink timeout + 1 s): reaching it means a hang.
        with httpx.Client(
            base_url=self._url, headers={"X-API-Key": self._key}, timeout=30
        ) as client:
            while not self._stop.is_set():
                record = samples.transaction(rng)
                try:
                    response = client.post(TX, json=record)
                except httpx.TimeoutException:
                    with self._lock:
                        self.outcomes["client_timeout"] += 1
                    continue
                with self._lock:
                    self.outcomes[str(response.status_code)] += 1
                    if response.status_code == 200:
                        self.acked.append((record, response.json()))
                    elif response.status_code == 503 and "Retry-After" not in response.headers:
                        self.missing_retry_after += 1


def test_kafka_stopped_during_load_gives_503s_and_loses_nothing_acknowledged(
    postgres_settings: PostgresSettings, kafka_settings: KafkaSettings, schema: str
) -> None:
    env = _ingestor_env(schema, INGESTOR_LOG_REQUESTS="false")
    key = create_api_key(postgres_settings, schema)
    with live_ingestor(env) as live, _Load(live.url, key, threads=4) as load:
        _wait_for(lambda: load.count("200") >= 50, timeout_s=60, what="50 acknowledged records")
        try:
            _supervisorctl("stop", "kafka")
            _wait_for(lambda: load.count("503") >= 8, timeout_s=90, what="503s while Kafka is down")
        finally:
            _supervisorctl("start", "kafka")
        _wait_for(
            lambda: _ready(live.url).status_code == 200,
            timeout_s=180,
            what="the ingestor to be ready again",
        )
        after = load.count("200")
        _wait_for(
            lambda: load.count("200") >= after + 20, timeout_s=120, what="200s after recovery"
        )

    assert load.outcomes["client_timeout"] == 0, load.outcomes
    assert load.missing_retry_after == 0
    assert set(load.outcomes) <= {"200", "503", "client_timeout"}, load.outcomes
    # Every acknowledged record is in Kafka at the place its receipt names.
    by_partition: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for record, receipt in load.acked:
        by_partition.setdefault(receipt["destination"]["partition"], []).append((record, receipt))
    for partition, items in by_partition.items():
        start = min(r["destination"]["offset"] for _, r in items)
        messages = {
            m.offset(): m
            for m in read_partition(
                kafka_settings, "finance.transactions.v1", partition, start=start
            )
        }
        for record, receipt in items:
            message = messages[receipt["destination"]["offset"]]
            assert message.key() == record["transaction_id"].encode()
            assert ingest_id_of(message) == receipt["ingest_id"]


def test_postgres_stopped_ready_is_degraded_and_unkeyed_ingest_is_served(
    postgres_settings: PostgresSettings, kafka_settings: KafkaSettings, schema: str
) -> None:
    # The key cache expires during the outage: the failed reloads must keep the cached keys.
    env = _ingestor_env(schema, INGESTOR_API_KEY_CACHE_TTL_S="1")
    key = create_api_key(postgres_settings, schema)
    rng = random.Random()
    with (
        live_ingestor(env) as live,
        httpx.Client(base_url=live.url, headers={"X-API-Key": key}, timeout=30) as client,
    ):
        assert _ready(live.url).json()["status"] == "ready"
        assert client.post(TX, json=samples.transaction(rng)).status_code == 200
        # Created after the ingestor loaded its keys, and not reloaded before the outage.
        other_key = create_api_key(postgres_settings, schema)
        try:
            _supervisorctl("stop", "postgres")
            _wait_until_ready_says(live.url, "degraded", timeout_s=60)
            ready = _ready(live.url)
            time.sleep(1.5)  # past the key cache's TTL
            record = samples.transaction(rng)
            unkeyed = client.post(TX, json=record)
            keyed = client.post(
                TX, json=samples.transaction(rng), headers={"Idempotency-Key": "outage"}
            )
            unknown = client.post(
                TX, json=samples.transaction(rng), headers={"X-API-Key": other_key}
            )
        finally:
            _supervisorctl("start", "postgres")
        _wait_until_ready_says(live.url, "ready", timeout_s=120)
        after = client.post(TX, json=samples.transaction(rng), headers={"Idempotency-Key": "k2"})

    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "store": "unavailable",
        "kafka": "ok",
        "api_keys": "cached",
    }
    assert unkeyed.status_code == 200, unkeyed.text
    receipt = unkeyed.json()
    [message] = read_partition(
        kafka_settings,
        "finance.transactions.v1",
        receipt["destination"]["partition"],
        start=receipt["destination"]["offset"],
    )[:1]
    assert message.key() == record["transaction_id"].encode()
    assert ingest_id_of(message) == receipt["ingest_id"]
    # What needs PostgreSQL is refused with 503 and Retry-After, not hung or 500.
    for refused in (keyed, unknown):
        assert refused.status_code == 503, refused.text
        assert "Retry-After" in refused.headers
    assert after.status_code == 200, after.text
