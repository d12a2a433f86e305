"""Keep-alive of `dataplatform run ingestor`: a connection reused after an idle spell works.

uvicorn closes idle connections after `INGESTOR_KEEPALIVE_S`; with its own 5 s, a client
reusing a connection idle for about that long raced the close and got a reset (`ReadError`).
"""

from __future__ import annotations

import json
import random
import time

import httpx

from dataplatform import samples
from dataplatform.settings import PostgresSettings
from fastapi_app.testing import create_api_key, live_ingestor

BATCH = "/v1/transactions/batch"
IDLE_S = 6.0


def _post_batch(client: httpx.Client, rng: random.Random) -> tuple[httpx.Response, object]:
    body = "\n".join(json.dumps(samples.transaction(rng)) for _ in range(2))
    response = client.post(BATCH, content=body)
    # The client end of the TCP connection the request went over.
    return response, response.extensions["network_stream"].get_extra_info("client_addr")


def test_reuse_connection_after_idle_accepted(
    postgres_settings: PostgresSettings, ingest_schema: str
) -> None:
    key = create_api_key(postgres_settings, ingest_schema)
    env = {"INGESTOR_SINK": "postgres", "INGEST_DB_SCHEMA": ingest_schema}
    rng = random.Random(7)
    with live_ingestor(env) as live:
        # The client keeps idle connections longer than the idle spell, as a load balancer does.
        limits = httpx.Limits(max_connections=1, keepalive_expiry=IDLE_S * 5)
        headers = {"X-API-Key": key, "Content-Type": "application/x-ndjson"}
        with httpx.Client(base_url=live.url, headers=headers, limits=limits) as client:
            first, first_addr = _post_batch(client, rng)
            time.sleep(IDLE_S)
            second, second_addr = _post_batch(client, rng)
    for response in (first, second):
        assert response.status_code == 200, response.text
        assert [r["outcome"] for r in response.json()["results"]] == ["accepted", "accepted"]
    # The same connection: the server kept it open past uvicorn's 5 s default.
    assert second_addr == first_addr
