"""The ingestor on the starter track: POST -> Postgres outbox row -> bronze Delta row."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from deltalake import DeltaTable

from dataplatform import samples
from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import TRANSACTIONS
from dataplatform.db.migrate import search_path
from dataplatform.exporter import LakeExporter
from dataplatform.lake import Lake
from dataplatform.settings import ExporterSettings, PostgresSettings, S3Settings
from fastapi_app.testing import (
    LiveIngestor,
    create_api_key,
    live_ingestor,
    temporary_schema,
)

TX = "/ingest-financial-transaction/"


@pytest.fixture(scope="module")
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


@pytest.fixture(scope="module")
def lake_prefix(s3_settings: S3Settings) -> Iterator[str]:
    prefix = f"tests/{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_prefix(s3_settings, prefix)


@pytest.fixture(scope="module")
def ingestor(schema: str) -> Iterator[LiveIngestor]:
    with live_ingestor({"INGESTOR_SINK": "postgres", "INGEST_DB_SCHEMA": schema}) as live:
        yield live


@pytest.fixture(scope="module")
def client(
    ingestor: LiveIngestor, postgres_settings: PostgresSettings, schema: str
) -> Iterator[httpx.Client]:
    key = create_api_key(postgres_settings, schema)
    with httpx.Client(
        base_url=ingestor.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as http:
        yield http


@pytest.fixture(scope="module")
def exporter(
    postgres_settings: PostgresSettings, s3_settings: S3Settings, schema: str, lake_prefix: str
) -> LakeExporter:
    settings = ExporterSettings().model_copy(update={"db_schema": schema})
    return LakeExporter(postgres_settings, Lake.load(prefix=lake_prefix, s3=s3_settings), settings)


def _outbox_rows(
    postgres: PostgresSettings, schema: str, ingest_id: str
) -> list[tuple[object, ...]]:
    # `o1.<outbox id>.<mac>`: the receipt names its row.
    outbox_id = int(ingest_id.split(".")[1])
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        return conn.execute(
            "SELECT id, entity, record_key, payload FROM outbox WHERE id = %s", (outbox_id,)
        ).fetchall()


def test_ready_checks_store_and_outbox(client: httpx.Client) -> None:
    assert client.get("/ready").json()["checks"] == {"store": "ok", "postgres": "ok"}


def test_post_lands_in_outbox_then_in_bronze_delta(
    client: httpx.Client,
    postgres_settings: PostgresSettings,
    s3_settings: S3Settings,
    schema: str,
    exporter: LakeExporter,
) -> None:
    record = samples.transaction(random.Random())
    response = client.post(TX, json=record)
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["destination"]["sink"] == "postgres"
    [(outbox_id, entity, key, payload)] = _outbox_rows(
        postgres_settings, schema, receipt["ingest_id"]
    )
    assert outbox_id == receipt["destination"]["outbox_id"]
    assert (entity, key) == ("finance.transactions", record["transaction_id"])
    assert json.loads(str(payload)) == record

    exported = exporter.export_once()
    assert any(b.entity == "finance.transactions" and b.rows >= 1 for b in exported)

    table = DeltaTable(
        exporter.table_uri(TRANSACTIONS), storage_options=s3_settings.delta_storage_options()
    )
    rows = [
        r for r in table.to_pyarrow_table().to_pylist() if r["ingest_id"] == receipt["ingest_id"]
    ]
    assert len(rows) == 1
    row = rows[0]
    assert row["record_key"] == record["transaction_id"]
    assert json.loads(row["payload"]) == record
    assert (row["source"], row["outbox_id"], row["kafka_topic"]) == ("outbox", outbox_id, None)
    assert row["ingest_date"] == row["ingested_at"].date()
    assert table.metadata().partition_columns == ["ingest_date"]

    status = client.get(f"/ingest/{receipt['ingest_id']}").json()
    assert status["status"] == "landed"
    assert [s["stage"] for s in status["stages"]] == ["accepted", "durable", "landed"]


def test_retries_with_idempotency_key_write_one_outbox_row(
    client: httpx.Client, postgres_settings: PostgresSettings, schema: str
) -> None:
    record = samples.transaction(random.Random())
    answers = [
        client.post(TX, json=record, headers={"Idempotency-Key": f"k-{record['transaction_id']}"})
        for _ in range(5)
    ]
    assert {a.json()["ingest_id"] for a in answers} == {answers[0].json()["ingest_id"]}
    assert len(_outbox_rows(postgres_settings, schema, answers[0].json()["ingest_id"])) == 1
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(search_path(schema))
        count = conn.execute(
            "SELECT count(*) FROM outbox WHERE record_key = %s", (record["transaction_id"],)
        ).fetchone()
    assert count == (1,)


def test_keyed_request_completes_its_binding_in_the_outbox_transaction(
    client: httpx.Client, postgres_settings: PostgresSettings, schema: str
) -> None:
    records = [samples.transaction(random.Random()) for _ in range(3)]
    key = f"bound-{records[0]['transaction_id']}"
    response = client.post("/v1/transactions/batch", json=records, headers={"Idempotency-Key": key})
    assert response.status_code == 200, response.text
    ids = [r["receipt"]["ingest_id"] for r in response.json()["results"]]

    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(search_path(schema))
        state, stored = conn.execute(
            "SELECT state, receipts FROM idempotency_keys WHERE idempotency_key = %s", (key,)
        ).fetchone() or (None, None)

    # Complete as the answer is sent: no window in which a crash leaves it in progress.
    assert state == "complete"
    assert [r["i"] for r in stored] == ids
    assert [len(_outbox_rows(postgres_settings, schema, i)) for i in ids] == [1, 1, 1]


def test_batch_lands_in_outbox(
    client: httpx.Client, postgres_settings: PostgresSettings, schema: str
) -> None:
    rng = random.Random()
    claims = [samples.claim(rng) for _ in range(50)]
    response = client.post("/v1/claims/batch", json=claims)
    assert response.status_code == 200
    ids = [r["receipt"]["destination"]["outbox_id"] for r in response.json()["results"]]
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(search_path(schema))
        found = conn.execute(
            "SELECT count(*) FROM outbox WHERE id = ANY(%s) AND entity = 'insurance.claims'",
            (ids,),
        ).fetchone()
    assert found == (50,)


def test_batch_versions_of_one_key_get_outbox_ids_in_request_order(
    client: httpx.Client, postgres_settings: PostgresSettings, schema: str
) -> None:
    # The outbox id orders versions downstream: 20 versions of one claim in one batch.
    claim = samples.claim(random.Random())
    statuses = ["submitted", "under_review", "approved", "rejected"] * 5
    response = client.post(
        "/v1/claims/batch", json=[{**claim, "claim_status": status} for status in statuses]
    )
    assert response.status_code == 200, response.text
    outbox_ids = [r["receipt"]["destination"]["outbox_id"] for r in response.json()["results"]]
    assert outbox_ids == sorted(outbox_ids)
    assert len(set(outbox_ids)) == 20
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(search_path(schema))
        rows = conn.execute(
            "SELECT payload FROM outbox WHERE record_key = %s ORDER BY id", (claim["claim_id"],)
        ).fetchall()
    assert [json.loads(row[0])["claim_status"] for row in rows] == statuses
