"""The ingest fast path (`api/fastpath.py`) against FastAPI's routing of the same routes: the
same OpenAPI spec, and the same status, headers and body for a table of good and bad requests."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dataplatform import samples
from dataplatform.settings import IngestorSettings
from fastapi_app.app.api import fastpath
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app

TX = "/ingest-financial-transaction/"
CLAIM = "/ingest-insurance-claim/"
TX_BATCH = "/v1/transactions/batch"
CLAIM_BATCH = "/v1/claims/batch"
SETTINGS = {"max_record_bytes": 2048, "max_inflight_records": 50, "rate_limit_burst": 3}


@dataclass
class Side:
    """One app (fast path on or off) with its own store, sink and spans."""

    client: TestClient
    store: MemoryStore
    publisher: MemoryPublisher
    spans: InMemorySpanExporter


def _side(*, fast_path: bool, keys: dict[str, Any] | None) -> Side:
    store, publisher, spans = MemoryStore(), MemoryPublisher(), InMemorySpanExporter()
    if keys is not None:
        store.api_keys = dict(keys)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = create_app(
        IngestorSettings(_env_file=None, **SETTINGS),
        store=store,
        publisher=publisher,
        tracer_provider=provider,
        fast_path=fast_path,
    )
    return Side(TestClient(app, follow_redirects=False), store, publisher, spans)


@dataclass
class Case:
    """A request, and what to break around it."""

    name: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    key: str = "good"  # good | limited | unknown | none
    sink_down: bool = False
    store_down: bool = False


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _cases() -> list[Case]:
    rng = random.Random(11)
    tx, claim = samples.transaction(rng), samples.claim(rng)
    bad_tx = samples.invalid("transactions", rng)[0]
    batch = [samples.transaction(rng) for _ in range(3)]
    ndjson = b"".join(_json(samples.claim(rng)) + b"\n" for _ in range(2))
    tx_text = _json(tx)
    return [
        Case("single transaction", TX, tx_text),
        Case("single claim", CLAIM, _json(claim)),
        Case("bearer auth", TX, _json(samples.transaction(rng)), key="bearer"),
        Case(
            "content type with charset",
            TX,
            _json(samples.transaction(rng)),
            {"content-type": "application/json; charset=utf-8"},
        ),
        Case("no content type", TX, _json(samples.transaction(rng)), {"content-type": ""}),
        Case("invalid record", TX, _json(bad_tx)),
        Case("invalid json", TX, b"{not json"),
        Case("array to single", TX, _json([tx])),
        Case("repeated key", TX, b'{"amount": "1.00", "amount": "2.00"}'),
        Case("empty body", TX, b""),
        Case("wrong content type", TX, tx_text, {"content-type": "text/plain"}),
        Case("record too large", TX, b'{"pad": "' + b"x" * 4096 + b'"}'),
        Case("bad content length", TX, tx_text, {"content-length": "abc"}),
        Case("idempotency key first", TX, tx_text, {"idempotency-key": "k-1"}),
        Case("idempotency key replay", TX, tx_text, {"idempotency-key": "k-1"}),
        Case(
            "idempotency key conflict",
            TX,
            _json(samples.transaction(rng)),
            {"idempotency-key": "k-1"},
        ),
        Case("idempotency key invalid", TX, tx_text, {"idempotency-key": "with space"}),
        Case("idempotency key too long", TX, tx_text, {"idempotency-key": "k" * 300}),
        Case("missing api key", TX, tx_text, key="none"),
        Case("invalid api key", TX, tx_text, key="invalid"),
        Case("malformed api key", TX, tx_text, key="garbage"),
        Case("sink down", TX, _json(samples.transaction(rng)), sink_down=True),
        Case("key store down, unknown key", TX, tx_text, key="unknown", store_down=True),
        Case("batch json", TX_BATCH, _json(batch)),
        Case("batch with a bad record", TX_BATCH, _json([*batch, bad_tx, "x"])),
        Case("batch all rejected", TX_BATCH, _json([bad_tx])),
        Case("batch not an array", TX_BATCH, _json(tx)),
        Case("batch empty", TX_BATCH, b"[]"),
        Case("batch ndjson", CLAIM_BATCH, ndjson, {"content-type": "application/x-ndjson"}),
        Case(
            "batch ndjson bad line",
            CLAIM_BATCH,
            ndjson + b"{oops\n",
            {"content-type": "application/x-ndjson"},
        ),
        Case("batch wrong content type", CLAIM_BATCH, ndjson, {"content-type": "text/csv"}),
        Case(
            "batch over the in-flight bound",
            TX_BATCH,
            _json([samples.transaction(rng) for _ in range(60)]),
        ),
        Case(
            "batch with idempotency key",
            CLAIM_BATCH,
            ndjson,
            {"content-type": "application/x-ndjson", "idempotency-key": "b-1"},
        ),
        Case(
            "batch replay",
            CLAIM_BATCH,
            ndjson,
            {"content-type": "application/x-ndjson", "idempotency-key": "b-1"},
        ),
        Case("batch sink down", TX_BATCH, _json(batch), sink_down=True),
        # Left to FastAPI by the fast path: both apps answer alike all the same.
        Case("GET on an ingest route", TX, method="GET"),
        Case("no trailing slash", TX.rstrip("/"), tx_text),
        Case("PUT on a batch route", TX_BATCH, _json(batch), method="PUT"),
        *[
            Case(f"rate limited {n}", TX, _json(samples.transaction(rng)), key="limited")
            for n in range(4)
        ],
    ]


#: Values that differ between two runs (clock, signed ids over a timestamp): replaced by their
#: shape before comparing.
_VOLATILE = re.compile(rb'"(ingest_id|received_at|durable_at)":"[^"]*"')


def _normalised(response: Response) -> tuple[int, dict[str, str], Any]:
    headers = {
        name: value for name, value in response.headers.items() if name not in ("date", "server")
    }
    body = _VOLATILE.sub(rb'"\1":"*"', response.content)
    return response.status_code, headers, orjson.loads(body) if body else None


def _send(side: Side, case: Case, keys: dict[str, str]) -> Response:
    headers = dict(case.headers)
    if case.key == "bearer":
        headers["authorization"] = f"Bearer {keys['good']}"
    elif case.key == "invalid":
        headers["x-api-key"] = keys["good"][:-4] + "0000"
    elif case.key == "garbage":
        headers["x-api-key"] = "not-a-key"
    elif case.key != "none":
        headers["x-api-key"] = keys[case.key]
    if headers.get("content-type") == "":
        del headers["content-type"]
    elif "content-type" not in headers:
        headers["content-type"] = "application/json"
    side.publisher.available = not case.sink_down
    side.store.available = not case.store_down
    try:
        return side.client.request(case.method, case.path, content=case.body, headers=headers)
    finally:
        side.publisher.available = side.store.available = True


@pytest.fixture(scope="module")
def answers() -> list[tuple[Case, Response, Response]]:
    keys_store = MemoryStore()
    keys = {
        "good": keys_store.add_api_key(),
        "limited": keys_store.add_api_key(rate_limit_per_s=0.001),
        "unknown": MemoryStore().add_api_key(),
    }
    fast = _side(fast_path=True, keys=keys_store.api_keys)
    routed = _side(fast_path=False, keys=keys_store.api_keys)
    with fast.client, routed.client:
        answered = [(case, _send(fast, case, keys), _send(routed, case, keys)) for case in _cases()]
    assert [m.headers for m in fast.publisher.messages] != []
    assert [(m.topic, m.key, m.value) for m in fast.publisher.messages] == [
        (m.topic, m.key, m.value) for m in routed.publisher.messages
    ]
    return answered


def test_fast_path_answers_table_like_fastapi_routing(
    answers: list[tuple[Case, Response, Response]],
) -> None:
    for case, fast, routed in answers:
        assert _normalised(fast) == _normalised(routed), case.name


def test_fast_path_table_covers_every_outcome(
    answers: list[tuple[Case, Response, Response]],
) -> None:
    # The table is only a proof if it reaches each answer the ingest routes give.
    statuses = {fast.status_code for _, fast, _ in answers}
    assert statuses >= {200, 307, 400, 401, 405, 409, 413, 415, 422, 429, 503}
    by_name = {case.name: fast for case, fast, _ in answers}
    assert by_name["idempotency key replay"].json()["duplicate"] is True
    assert by_name["batch over the in-flight bound"].headers["retry-after"]
    assert by_name["rate limited 3"].status_code == 429


def test_fast_path_keeps_openapi_spec() -> None:
    fast = _side(fast_path=True, keys=None).client.app
    routed = _side(fast_path=False, keys=None).client.app
    assert fast.openapi() == routed.openapi()  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", [TX, TX_BATCH])
def test_fast_path_span_continues_client_trace(path: str) -> None:
    rng = random.Random(3)
    side = _side(fast_path=True, keys=None)
    parent_trace, parent_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    body = samples.transaction(rng) if path == TX else [samples.transaction(rng)]
    with side.client as client:
        response = client.post(
            path,
            json=body,
            headers={
                "x-api-key": side.store.add_api_key(),
                "traceparent": f"00-{parent_trace}-{parent_span}-01",
            },
        )
    assert response.status_code == 200, response.text
    (span,) = side.spans.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == fastpath.__name__  # served by the fast path
    assert span.kind == SpanKind.SERVER
    assert span.name == f"POST {path}"
    assert span.attributes is not None
    assert span.attributes["http.route"] == path
    assert span.attributes["http.response.status_code"] == 200
    assert span.parent is not None and span.parent.span_id == int(parent_span, 16)
    context = span.get_span_context()
    assert side.publisher.messages[0].headers["traceparent"] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    )


def test_fast_path_leaves_other_routes_to_fastapi() -> None:
    side = _side(fast_path=True, keys=None)
    with side.client as client:
        assert client.get("/health").status_code == 200
        lookup = client.get("/ingest/k1.nope", headers={"x-api-key": side.store.add_api_key()})
        assert lookup.status_code in (404, 422)
    # The receipt lookup's span is FastAPI's own.
    (span,) = side.spans.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "fastapi"
