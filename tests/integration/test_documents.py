"""Documents end to end on the real services: the API -> MongoDB (FerretDB) -> bronze/silver Delta,
and the curation step joining claim notes to the curated claims.

Each test has its own MongoDB database (its own ingest sequence), ingest schema (API keys) and
lake root, so it never meets the live document-landing job or another test. The landing job runs
as its real CLI process; the kill test SIGKILLs it mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pymongo import MongoClient

from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import CLAIMS, exactjson
from dataplatform.documents import BRONZE_TABLE, CLAIMS_WITH_NOTES_TABLE, SILVER_TABLE
from dataplatform.documents.store import MARKED_ID
from dataplatform.lake import Lake
from dataplatform.native.base import Context
from dataplatform.native.services import TRACK_SERVICES
from dataplatform.settings import MongoSettings, PostgresSettings, S3Settings, get_mongo_settings
from fastapi_app.testing import create_api_key, live_ingestor, temporary_schema

CLI = str(Path(sys.executable).parent / "dataplatform")


@dataclass(frozen=True)
class Scope:
    """One test's own corner of every store, and the environment that points processes at it."""

    mongo: MongoSettings
    lake: Lake
    schema: str
    keys: tuple[str, str]

    @property
    def env(self) -> dict[str, str]:
        """Variables for the ingestor and the landing job."""
        return {
            "MONGODB_DB": self.mongo.db,
            "LAKEHOUSE_LAKE_PREFIX": self.lake.prefix,
            "INGEST_DB_SCHEMA": self.schema,
            "INGESTOR_API_KEY_CACHE_TTL_S": "0",
            # Small commits, so a kill lands between two of them.
            "DOCUMENTS_BATCH_SIZE": "7",
            "DOCUMENTS_POLL_INTERVAL_S": "0.2",
        }


@pytest.fixture
def scope(
    platform: Context, postgres_settings: PostgresSettings, s3_settings: S3Settings
) -> Iterator[Scope]:
    if "mongodb" not in TRACK_SERVICES[platform.track]:
        pytest.skip(f"documents run in the advanced track, not {platform.track}")
    tag = uuid.uuid4().hex[:10]
    mongo = get_mongo_settings().model_copy(update={"db": f"it_documents_{tag}"})
    lake = Lake(s3=s3_settings, prefix=f"tests/documents/{tag}")
    client: MongoClient[Any] = MongoClient(**mongo.client_options())
    with temporary_schema(postgres_settings) as schema:
        keys = (
            create_api_key(postgres_settings, schema),
            create_api_key(postgres_settings, schema),
        )
        try:
            yield Scope(mongo, lake, schema, keys)
        finally:
            client.drop_database(mongo.db)
            client.close()
            delete_prefix(s3_settings, lake.prefix)


def _note(document_id: str, claim_id: str, at: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": document_id,
        "entity": "claim_note",
        "timestamp": at,
        "body": {"claim_id": claim_id, "text": text, **extra},
    }


def _post(url: str, key: str, document: dict[str, Any] | bytes, **headers: str) -> httpx.Response:
    content = document if isinstance(document, bytes) else json.dumps(document).encode()
    return httpx.post(
        f"{url}/v1/documents",
        content=content,
        headers={"X-API-Key": key, "Content-Type": "application/json", **headers},
        timeout=30,
    )


def _rows(lake: Lake, table: str) -> list[dict[str, Any]]:
    delta = DeltaTable(
        lake.uri(table, scheme="s3"), storage_options=lake.s3.delta_storage_options()
    )
    rows: list[dict[str, Any]] = delta.to_pyarrow_table().to_pylist()
    return rows


def _landed_through(scope: Scope, table: str) -> int:
    delta = DeltaTable(
        scope.lake.uri(table, scheme="s3"), storage_options=scope.lake.s3.delta_storage_options()
    )
    return delta.transaction_version(f"dataplatform-document-landing:{scope.mongo.db}") or 0


def _landing(scope: Scope, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [
                CLI,
                "run",
                "document-landing",
                "--heartbeat-path",
                str(log.with_suffix(".json")),
                *args,
            ],
            env={**os.environ, **scope.env, "PYTHONUNBUFFERED": "1"},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _receipt(url: str, key: str) -> dict[str, Any]:
    response = httpx.get(url, headers={"X-API-Key": key}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _bronze_version(scope: Scope) -> int:
    return DeltaTable(
        scope.lake.uri(BRONZE_TABLE, scheme="s3"),
        storage_options=scope.lake.s3.delta_storage_options(),
    ).version()


def _cli(scope: Scope, *args: str) -> str:
    """Run `dataplatform <args>` in the test's scope; its output."""
    done = subprocess.run(
        [CLI, *args],
        env={**os.environ, **scope.env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _land_once(scope: Scope, tmp_path: Path) -> None:
    """`dataplatform run document-landing --once`: land what the store holds, then exit."""
    _cli(scope, "run", "document-landing", "--once", "--heartbeat-path", str(tmp_path / "hb.json"))


def test_posted_documents_readable_from_store_and_land_in_delta(
    scope: Scope, tmp_path: Path
) -> None:
    key, other_key = scope.keys
    raw_v1 = (
        b'{"id": "NOTE-1", "entity": "claim_note", "timestamp": "2024-01-02T09:30:00.000001Z",'
        b' "body": {"claim_id": "IC-1", "text": "photos received",'
        b' "estimate": 123456789012.123456}}'
    )
    v2 = _note("NOTE-1", "IC-1", "2024-01-03T10:00:00Z", "estimate approved", estimate="1830.40")
    late_old = _note("NOTE-1", "IC-1", "2024-01-01T00:00:00Z", "written first, sent last")
    profile = {
        "id": "PROFILE-7",
        "entity": "customer_profile",
        "timestamp": "2024-01-02T00:00:00Z",
        "body": {"customer_id": "CUST-7", "segments": ["gold"], "limit": 2500.5},
    }
    with live_ingestor(scope.env) as live:
        first = _post(live.url, key, raw_v1, **{"Idempotency-Key": "note-1-v1"})
        assert first.status_code == 200, first.text
        receipt = first.json()
        replay = _post(live.url, key, raw_v1, **{"Idempotency-Key": "note-1-v1"})
        assert replay.status_code == 200
        assert replay.json()["duplicate"] is True
        assert replay.json()["ingest_id"] == receipt["ingest_id"]
        conflict = _post(live.url, key, v2, **{"Idempotency-Key": "note-1-v1"})
        assert conflict.status_code == 409
        for document in (v2, late_old, profile):
            assert _post(live.url, key, document).status_code == 200
        bad = _post(live.url, key, _note("NOTE-2", "", "2024-01-02T00:00:00Z", "no claim"))
        assert bad.status_code == 422
        assert "claim_id" in bad.json()["message"]

        receipt_url = f"{live.url}/v1/documents/ingest/{receipt['ingest_id']}"
        stored_receipt = _receipt(receipt_url, key)
        assert stored_receipt["status"] == "durable"
        assert [stage["stage"] for stage in stored_receipt["stages"]] == ["accepted", "durable"]
        # Visible only to the key that sent it.
        assert httpx.get(receipt_url, headers={"X-API-Key": other_key}).status_code == 404

        client: MongoClient[Any] = MongoClient(**scope.mongo.client_options())
        try:
            store = client[scope.mongo.db]
            stored = store["documents"].find_one({"_id": receipt["ingest_id"]})
            count = store["documents"].count_documents({})
            indexes = store["documents"].index_information()
            assert stored is not None and count == 4  # the replay and the rejects stored nothing
            assert stored["claim_id"] == "IC-1"
            estimate = exactjson.loads(stored["body_json"])["estimate"]
            assert estimate == Decimal("123456789012.123456")
            assert {"ingest_seq_unique", "claim_id", "timestamp_desc"} <= set(indexes)

            # Curated claims as the Spark curation leaves them (the columns the join keeps).
            claims = pa.table(
                {
                    "claim_id": ["IC-1", "IC-9"],
                    "claim_amount": pa.array(
                        [Decimal("2500.000001"), Decimal("10")], pa.decimal128(18, 6)
                    ),
                    "claim_status": ["submitted", "paid"],
                }
            )
            write_deltalake(
                scope.lake.table("silver", CLAIMS, scheme="s3"),
                claims,
                storage_options=scope.lake.s3.delta_storage_options(),
            )
            _land_once(scope, tmp_path)

            # Once in bronze, the receipt says so, with the bronze table's version.
            landed_receipt = _receipt(receipt_url, key)
            assert landed_receipt["status"] == "landed", landed_receipt
            assert landed_receipt["stages"][-1]["stage"] == "landed"
            bronze_version = _bronze_version(scope)
            where = f"bronze Delta table version {bronze_version}"
            assert landed_receipt["stages"][-1]["where"] == where

            # A crash between the bronze commit and the marks loses them: the next start marks
            # again what bronze holds.
            store["documents"].update_many({}, {"$unset": {"landed_at": "", "bronze_version": ""}})
            store["counters"].delete_one({"_id": MARKED_ID})
            assert _receipt(receipt_url, key)["status"] == "durable"
            _land_once(scope, tmp_path)
            assert _bronze_version(scope) == bronze_version  # nothing landed twice
            remarked = _receipt(receipt_url, key)
            assert remarked["status"] == "landed", remarked
            assert remarked["landed_at"] == landed_receipt["landed_at"]
            assert store["documents"].count_documents({"landed_at": None}) == 0
        finally:
            client.close()

    bronze = _rows(scope.lake, BRONZE_TABLE)
    assert sorted(row["ingest_seq"] for row in bronze) == [1, 2, 3, 4]
    by_id = {row["ingest_id"]: row for row in bronze}
    assert '"estimate":123456789012.123456' in by_id[receipt["ingest_id"]]["body_json"]
    silver = {(row["entity"], row["document_id"]): row for row in _rows(scope.lake, SILVER_TABLE)}
    assert set(silver) == {("claim_note", "NOTE-1"), ("customer_profile", "PROFILE-7")}
    # The landing job only lands: joining notes to claims is curation's.
    claims_with_notes_uri = scope.lake.uri(CLAIMS_WITH_NOTES_TABLE, scheme="s3")
    options = scope.lake.s3.delta_storage_options()
    assert not DeltaTable.is_deltatable(claims_with_notes_uri, storage_options=options)
    joined_run = _cli(scope, "lake", "join-claim-notes", "--lake-prefix", scope.lake.prefix)
    assert "2 claims" in joined_run
    assert json.loads(silver[("claim_note", "NOTE-1")]["body_json"])["text"] == "estimate approved"
    assert silver[("customer_profile", "PROFILE-7")]["customer_id"] == "CUST-7"
    assert silver[("claim_note", "NOTE-1")]["claim_id"] == "IC-1"
    joined = {row["claim_id"]: row for row in _rows(scope.lake, CLAIMS_WITH_NOTES_TABLE)}
    assert joined["IC-1"]["claim_amount"] == Decimal("2500.000001")
    assert joined["IC-1"]["note_count"] == 1
    (note,) = joined["IC-1"]["notes"]
    assert note["document_id"] == "NOTE-1"
    assert json.loads(note["body_json"])["text"] == "estimate approved"
    assert joined["IC-9"]["note_count"] == 0
    assert joined["IC-9"]["notes"] is None


def test_kill_document_landing_loses_and_duplicates_nothing(scope: Scope, tmp_path: Path) -> None:
    key = scope.keys[0]
    log = tmp_path / "landing.log"
    documents = [
        _note(f"NOTE-{i % 9}", f"IC-{i % 4}", f"2024-02-01T00:00:{i:02d}Z", f"version {i}")
        for i in range(45)
    ]
    with live_ingestor(scope.env) as live:
        job = _landing(scope, log=log)
        try:
            for index, document in enumerate(documents):
                assert _post(live.url, key, document).status_code == 200
                if index in (15, 30):
                    # SIGKILL while documents keep arriving, once it has committed something.
                    _wait_for(lambda: _landed_through(scope, BRONZE_TABLE) > 0, 120, "a commit")
                    os.killpg(job.pid, signal.SIGKILL)
                    job.wait(timeout=30)
                    job = _landing(scope, log=log)
        finally:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(timeout=30)
    restarted = _landing(scope, log=log)
    try:
        for table in (BRONZE_TABLE, SILVER_TABLE):
            _wait_for(
                lambda table=table: _landed_through(scope, table) >= len(documents),
                180,
                f"{table} through every version:\n{log.read_text(errors='replace')[-3000:]}",
            )
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(timeout=60)
    sequences = sorted(row["ingest_seq"] for row in _rows(scope.lake, BRONZE_TABLE))
    assert sequences == list(range(1, len(documents) + 1)), "lost or duplicated versions"
    silver_rows = _rows(scope.lake, SILVER_TABLE)
    silver = {row["document_id"]: json.loads(row["body_json"])["text"] for row in silver_rows}
    expected = {f"NOTE-{i % 9}": f"version {i}" for i in range(len(documents))}
    assert len(silver_rows) == len(expected)
    assert silver == expected
    # Every receipt answers `landed`: no mark was lost to a kill.
    client: MongoClient[Any] = MongoClient(**scope.mongo.client_options())
    try:
        unmarked = client[scope.mongo.db]["documents"].count_documents({"landed_at": None})
    finally:
        client.close()
    assert unmarked == 0


def test_concurrent_posts_get_unique_gapless_sequence(scope: Scope) -> None:
    # FerretDB v1's findAndModify is not atomic: concurrent requests must still each get their
    # own ingest sequence number, with no 503 and no gap for the landing job to wait out.
    key = scope.keys[0]
    documents = [
        _note(f"NOTE-{i}", "IC-1", "2024-03-01T00:00:00Z", f"concurrent {i}") for i in range(120)
    ]
    with live_ingestor(scope.env) as live, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda d: _post(live.url, key, d).status_code, documents))
    assert statuses == [200] * len(documents)
    client: MongoClient[Any] = MongoClient(**scope.mongo.client_options())
    try:
        stored = client[scope.mongo.db]["documents"].find({}, {"ingest_seq": 1})
        sequences = sorted(doc["ingest_seq"] for doc in stored)
    finally:
        client.close()
    assert sequences == list(range(1, len(documents) + 1))
