"""Response models of the API. They document the OpenAPI spec; the hot paths build the same
shapes as dicts and serialise them with orjson (a unit test checks they stay in step)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from dataplatform.ingest_ids import MAX_ID_LENGTH

_RECEIPT_EXAMPLE: dict[str, Any] = {
    "ingest_id": "k1.Uk0bY2n5SIqZB6C6qP5nYw.1.42.1704110400003.3f5c0e9a1b2d4c6e8f7a9b0c1d2e3f4a",
    "entity": "finance.transactions",
    "record_key": "FT-20240101120000-1234",
    "status": "durable",
    "duplicate": False,
    "received_at": "2024-01-01T12:00:00.001+00:00",
    "durable_at": "2024-01-01T12:00:00.003+00:00",
    "destination": {
        "sink": "kafka",
        "topic": "finance.transactions.v1",
        "partition": 1,
        "offset": 42,
        "table": None,
        "outbox_id": None,
    },
}


class ErrorDetail(BaseModel):
    """One problem: where (`loc`, starting with `body`, `header` or `path`), what and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: a sentence naming the problem, and the problems one by one."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "1 validation error for FinancialTransactionIn: amount: Input "
                    "should be greater than or equal to 0",
                    "detail": [
                        {
                            "loc": ["body", "amount"],
                            "msg": "Input should be greater than or equal to 0",
                            "type": "greater_than_equal",
                        }
                    ],
                }
            ]
        }
    )

    message: str
    detail: list[ErrorDetail] = Field(default_factory=list)


class Destination(BaseModel):
    """Where the sink put the record: a Kafka topic/partition/offset or a Postgres outbox row."""

    sink: Literal["postgres", "kafka", "memory"]
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    table: str | None = None
    outbox_id: int | None = None


_INGEST_ID_DESCRIPTION = (
    "the record's receipt: where the sink put it, signed for the API key that sent it "
    "(`k1.<topic id>.<partition>.<offset>.<timestamp ms>.<mac>` on the Kafka track, "
    "`o1.<outbox row id>.<mac>` on the starter track); bronze rows carry the same id"
)


class ReceiptBase(BaseModel):
    """Identity and state of one ingested record version."""

    ingest_id: str = Field(description=_INGEST_ID_DESCRIPTION, max_length=MAX_ID_LENGTH)
    entity: str = Field(description="`<domain>.<entity>`")
    record_key: str = Field(description="the natural key: transaction_id / claim_id")
    status: Literal["durable"] = Field(
        description="durable: committed to the outbox or acknowledged by Kafka"
    )
    received_at: datetime
    durable_at: datetime
    destination: Destination


class IngestReceipt(ReceiptBase):
    """The receipt returned by an ingest call."""

    model_config = ConfigDict(json_schema_extra={"examples": [_RECEIPT_EXAMPLE]})

    duplicate: bool = Field(
        description="true when this record version was already ingested: the original receipt "
        "is returned and nothing new is written"
    )


def _ingested_model(
    name: str, path: str, key_field: str, message: str, key: str, entity: str
) -> type[IngestReceipt]:
    """The answer of one entity's single-record endpoint: the seed's message, its key field
    (`transaction_id`, `claim_id`) and the receipt."""
    example = {
        "message": message,
        key_field: key,
        **_RECEIPT_EXAMPLE,
        "entity": entity,
        "record_key": key,
    }
    namespace = {
        "__doc__": f"Answer of `POST {path}`: the seed's message plus the receipt.",
        "__module__": __name__,
        "__qualname__": name,
        "__annotations__": {"message": str, key_field: str},
        "model_config": ConfigDict(json_schema_extra={"examples": [example]}),
    }
    model: type[IngestReceipt] = type(name, (IngestReceipt,), namespace)
    return model


TransactionIngested = _ingested_model(
    "TransactionIngested",
    "/ingest-financial-transaction/",
    "transaction_id",
    "Financial transaction ingested successfully",
    "FT-20240101120000-1234",
    "finance.transactions",
)
ClaimIngested = _ingested_model(
    "ClaimIngested",
    "/ingest-insurance-claim/",
    "claim_id",
    "Insurance claim ingested successfully",
    "IC-20240101120000-1234",
    "insurance.claims",
)


class RecordResult(BaseModel):
    """The outcome of one record of a batch, by its 0-based position in the request."""

    index: int
    outcome: Literal["accepted", "duplicate", "rejected"]
    record_key: str | None = None
    receipt: IngestReceipt | None = None
    errors: list[ErrorDetail] | None = None


class BatchIngested(BaseModel):
    """Answer of a batch ingest: counts and one result per record, in request order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "1 of 2 records accepted, 1 rejected",
                    "entity": "finance.transactions",
                    "received": 2,
                    "accepted": 1,
                    "duplicates": 0,
                    "rejected": 1,
                    "results": [
                        {
                            "index": 0,
                            "outcome": "accepted",
                            "record_key": "FT-20240101120000-1234",
                            "receipt": {**_RECEIPT_EXAMPLE},
                            "errors": None,
                        },
                        {
                            "index": 1,
                            "outcome": "rejected",
                            "record_key": None,
                            "receipt": None,
                            "errors": [
                                {
                                    "loc": ["body", 1, "currency"],
                                    "msg": "Value error, 'XYZ' is not an active ISO 4217 "
                                    "currency code (e.g. USD, EUR, JPY)",
                                    "type": "value_error",
                                }
                            ],
                        },
                    ],
                }
            ]
        }
    )

    message: str
    entity: str
    received: int
    accepted: int = Field(description="newly accepted records (durable in the sink)")
    duplicates: int = Field(description="records already ingested: original receipts returned")
    rejected: int
    results: list[RecordResult]


class Stage(BaseModel):
    """One step of a record's way through the platform."""

    stage: Literal["accepted", "durable", "landed", "curated"]
    at: datetime
    where: str | None = None


class ReceiptStatusOut(BaseModel):
    """Answer of `GET /ingest/{ingest_id}`: where the record is now and how it got there."""

    ingest_id: str = Field(description=_INGEST_ID_DESCRIPTION, max_length=MAX_ID_LENGTH)
    entity: str | None = Field(
        description="`<domain>.<entity>`; null only for a Kafka topic that no longer exists "
        "and never reported landing progress"
    )
    record_key: str | None = Field(
        description="the natural key, on the starter track while its outbox row is kept; a "
        "Kafka-track id carries the record's coordinates, not its key: null there"
    )
    status: Literal["durable", "landed", "curated", "lost"] = Field(
        description="durable: committed to the outbox or acknowledged by Kafka; landed: in the "
        "bronze table, or refused into quarantine (`quarantine_reason`) by landing or by "
        "curation (then the `curated` stage's `where` is `quarantine: <reason>`); curated: a "
        "curation run processed it into silver (possibly since superseded by a newer version "
        "of its key; never for a quarantined record); lost: its Kafka topic was recreated "
        "before landing reached it and no restore brought it back (see `hint`)"
    )
    received_at: datetime | None = Field(
        description="when the sink accepted the record (null once details expired)"
    )
    durable_at: datetime | None
    destination: Destination | None = Field(
        description="where the sink put it (null once details expired)"
    )
    quarantine_reason: str | None = Field(
        default=None,
        description="why landing or curation refused the record into quarantine, when one "
        "did: the stage (`landed` or `curated`) whose `where` is `quarantine: <reason>` says which",
    )
    details_expired: bool = Field(
        default=False,
        description="the starter track's outbox row was pruned after landing (`dataplatform "
        "db prune`): the record landed, its details are no longer kept",
    )
    stages: list[Stage]
    hint: str | None = Field(
        default=None,
        description="what to do about a lost record: resend with the same Idempotency-Key",
    )


class Welcome(BaseModel):
    """Answer of `GET /`."""

    message: str


class Health(BaseModel):
    """Answer of `GET /health` (liveness: the process serves requests)."""

    status: Literal["healthy"]
    sink: str


class Readiness(BaseModel):
    """Answer of `GET /ready`: whether the API can ingest, and each dependency's check.

    `degraded` (200, Kafka tracks): the store is down, Kafka answers and API keys are cached, so
    ingest without an `Idempotency-Key` works. `checks` holds `store` and the sink (`kafka`,
    `postgres`): `ok` or `unavailable`; `api_keys` (`cached`, `not loaded`) when the store is
    down; `service: starting` before the app is ready.
    """

    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, str]


class DocumentDestination(BaseModel):
    """Where the document store put a document version."""

    sink: Literal["mongodb"]
    database: str
    collection: str
    ingest_seq: int = Field(description="position in the ingest sequence the lake lands by")


class DocumentReceipt(BaseModel):
    """The receipt of one document version (`POST /v1/documents`, `GET .../ingest/{id}`)."""

    message: str
    ingest_id: UUID
    entity: Literal["claim_note", "adjuster_report", "customer_profile"]
    document_id: str
    status: Literal["durable", "landed"] = Field(
        description="durable: stored and acknowledged by the store; landed: written to the "
        "bronze Delta table by the document landing job"
    )
    duplicate: bool = Field(
        description="true when an earlier request with the same Idempotency-Key stored it"
    )
    received_at: datetime
    landed_at: datetime | None = None
    destination: DocumentDestination
    stages: list[Stage] = Field(description="the steps so far, as a record's receipt lists them")
