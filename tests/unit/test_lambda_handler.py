"""The Lambda adapter answers API Gateway HTTP API (payload 2.0) events exactly as the server
answers the same requests: status, the headers that matter and bodies, ids and times masked.

Each path gets its own app with in-memory parts (unit tier); the server path goes through
Starlette's TestClient (the ASGI app with its lifespan), the Lambda path through
`fastapi_app.lambda_handler.LambdaIngestor` with real event payloads.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataplatform import samples
from dataplatform.settings import IngestorSettings
from fastapi_app import lambda_handler
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app
from fastapi_app.lambda_handler import LambdaIngestor, load_postgres_password

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: A Kafka-track ingest id: it holds the record's timestamp, which differs between two answers.
INGEST_ID_RE = re.compile(r"k1\.[A-Za-z0-9_-]+\.\d+\.\d+\.\d+\.[0-9a-f]{32}")
#: Headers whose value the client relies on (content negotiation, auth challenge, back-off).
HEADERS_THAT_MATTER = ("content-type", "www-authenticate", "retry-after", "location")

CONTEXT = SimpleNamespace(
    function_name="dataplatform-dev-ingestor",
    aws_request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:dataplatform-dev-ingestor",
)


@dataclass
class Answer:
    """One response, reduced to what both paths must agree on."""

    status: int
    headers: dict[str, str]
    body: Any
    #: The unmasked body, to follow ids up; not compared.
    raw: Any = field(default=None, compare=False)


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] | None = None
    query: str = ""


def _is_time(key: str) -> bool:
    return key == "at" or key.endswith("_at")


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<time>" if _is_time(k) and v else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        return INGEST_ID_RE.sub("<ingest-id>", UUID_RE.sub("<uuid>", value))
    return value


def _answer(status: int, headers: dict[str, str], body: bytes) -> Answer:
    lowered = {k.lower(): v for k, v in headers.items()}
    kept = {k: lowered[k] for k in HEADERS_THAT_MATTER if k in lowered}
    parsed: Any = json.loads(body) if kept.get("content-type") == "application/json" else body
    return Answer(status, kept, _mask(parsed), parsed)


def http_api_event(request: Request, api_key: str | None) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0, as Lambda receives it."""
    headers = {
        "accept": "*/*",
        "content-length": str(len(request.body)),
        "host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if request.body:
        headers["content-type"] = "application/json"
    headers.update({k.lower(): v for k, v in (request.headers or {}).items()})
    if api_key is not None:
        headers["x-api-key"] = api_key
    binary = headers.get("content-type") == "application/x-ndjson"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "30/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1796040000000,
        },
        # API Gateway base64-encodes bodies whose content type is not text.
        "body": base64.b64encode(request.body).decode() if binary else request.body.decode(),
        "isBase64Encoded": binary,
    }


class Paths:
    """The same app twice: one served as ASGI, one as a Lambda function."""

    def __init__(self) -> None:
        self.server_store = MemoryStore()
        self.lambda_store = MemoryStore()
        self.lambda_publisher = MemoryPublisher()
        server_app = create_app(
            IngestorSettings(_env_file=None), store=self.server_store, publisher=MemoryPublisher()
        )
        self.server_key = self.server_store.add_api_key()
        self.lambda_key = self.lambda_store.add_api_key()
        self.client = TestClient(server_app)
        self.function = LambdaIngestor(
            create_app(
                IngestorSettings(_env_file=None),
                store=self.lambda_store,
                publisher=self.lambda_publisher,
            )
        )

    def server(self, request: Request, *, auth: bool = True) -> Answer:
        headers = dict(request.headers or {})
        if request.body and "content-type" not in {k.lower() for k in headers}:
            headers["content-type"] = "application/json"
        if auth:
            headers["X-API-Key"] = self.server_key
        url = request.path + (f"?{request.query}" if request.query else "")
        response = self.client.request(
            request.method, url, content=request.body or None, headers=headers
        )
        return _answer(response.status_code, dict(response.headers), response.content)

    def function_answer(self, request: Request, *, auth: bool = True) -> Answer:
        event = http_api_event(request, self.lambda_key if auth else None)
        result = self.function(event, CONTEXT)
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        return _answer(result["statusCode"], result.get("headers") or {}, raw)

    def both(self, request: Request, *, auth: bool = True) -> tuple[Answer, Answer]:
        return self.server(request, auth=auth), self.function_answer(request, auth=auth)


@pytest.fixture
def paths() -> Iterator[Paths]:
    both = Paths()
    with both.client:
        yield both
    both.function.close()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(16)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_lambda_answers_seed_transaction_like_server(paths: Paths, rng: random.Random) -> None:
    request = Request("POST", "/ingest-financial-transaction/", _json(samples.transaction(rng)))
    server, function = paths.both(request)
    assert server.status == 200
    assert server.body["message"] == "Financial transaction ingested successfully"
    assert function == server


def test_lambda_answers_seed_claim_like_server(paths: Paths, rng: random.Random) -> None:
    request = Request("POST", "/ingest-insurance-claim/", _json(samples.claim(rng)))
    server, function = paths.both(request)
    assert server.status == 200
    assert server.body["message"] == "Insurance claim ingested successfully"
    assert function == server


def test_lambda_answers_json_batch_with_a_bad_record_like_server(
    paths: Paths, rng: random.Random
) -> None:
    records = [samples.transaction(rng), samples.transaction(rng), {"transaction_id": "FT-1"}]
    server, function = paths.both(Request("POST", "/v1/transactions/batch", _json(records)))
    assert server.status == 200
    assert (server.body["accepted"], server.body["rejected"]) == (2, 1)
    assert function == server


def test_lambda_answers_ndjson_batch_like_server(paths: Paths, rng: random.Random) -> None:
    lines = b"\n".join(_json(samples.claim(rng)) for _ in range(3)) + b"\n"
    request = Request(
        "POST", "/v1/claims/batch", lines, headers={"content-type": "application/x-ndjson"}
    )
    server, function = paths.both(request)
    assert server.status == 200
    assert server.body["accepted"] == 3
    assert function == server
    assert len(paths.lambda_publisher.messages) == 3


def test_lambda_answers_health_and_root_like_server(paths: Paths) -> None:
    for path in ("/health", "/"):
        server, function = paths.both(Request("GET", path), auth=False)
        assert server.status == 200
        assert function == server


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (
            _json({"transaction_id": "FT-001", "timestamp": "invalid-date", "amount": "x"}),
            422,
        ),
    ],
    ids=["malformed-json", "invalid-fields"],
)
def test_lambda_answers_bad_input_like_server(paths: Paths, body: bytes, status: int) -> None:
    server, function = paths.both(Request("POST", "/ingest-financial-transaction/", body))
    assert server.status == status
    assert function == server


def test_lambda_answers_missing_api_key_like_server(paths: Paths, rng: random.Random) -> None:
    request = Request("POST", "/ingest-insurance-claim/", _json(samples.claim(rng)))
    server, function = paths.both(request, auth=False)
    assert server.status == 401
    assert "www-authenticate" in server.headers
    assert function == server


def test_lambda_answers_repeat_and_receipt_lookup_like_server(
    paths: Paths, rng: random.Random
) -> None:
    request = Request(
        "POST",
        "/ingest-financial-transaction/",
        _json(samples.transaction(rng)),
        headers={"Idempotency-Key": "retry-16-1"},
    )
    server_first, function_first = paths.both(request)
    server_repeat, function_repeat = paths.both(request)
    assert server_repeat.body["duplicate"] is True
    assert function_repeat == server_repeat
    server = paths.server(Request("GET", f"/ingest/{server_first.raw['ingest_id']}"))
    function = paths.function_answer(Request("GET", f"/ingest/{function_first.raw['ingest_id']}"))
    assert server.status == 200
    assert server.body["entity"] == server_first.body["entity"]
    assert function == server


def test_lambda_runs_lifespan_once_across_events(paths: Paths) -> None:
    for _ in range(3):
        paths.function_answer(Request("GET", "/health"), auth=False)
    stack = paths.function._lifespan
    paths.function(http_api_event(Request("GET", "/health"), None), CONTEXT)
    assert paths.function._lifespan is stack is not None
    paths.function.close()
    assert paths.function._lifespan is None


def test_load_postgres_password_reads_the_secret_only_when_unset() -> None:
    calls: list[str] = []

    def fetch(secret_id: str) -> str:
        calls.append(secret_id)
        return json.dumps({"username": "dataplatform", "password": "s3cr3t"})

    environ = {lambda_handler.PASSWORD_SECRET_VARIABLE: "arn:aws:secretsmanager:x:1:secret:rds"}
    load_postgres_password(environ, fetch)
    assert environ["POSTGRES_PASSWORD"] == "s3cr3t"
    load_postgres_password(environ, fetch)
    assert calls == ["arn:aws:secretsmanager:x:1:secret:rds"]
    untouched: dict[str, str] = {}
    load_postgres_password(untouched, fetch)
    assert untouched == {}
