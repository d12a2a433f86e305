"""Receipts: where an ingested record is now."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Response

from dataplatform.contracts import ENTITIES
from dataplatform.ingest_ids import MAX_ID_LENGTH, KafkaPlace, well_formed
from fastapi_app.app.api.deps import PrincipalDep, ServiceDep
from fastapi_app.app.api.errors import ApiError
from fastapi_app.app.api.ingesting import RECEIPT_OPERATION_ID, SECURITY, receipt_errors
from fastapi_app.app.api.receipt_bodies import destination_dict
from fastapi_app.app.core.store import entity_label
from fastapi_app.app.models import ReceiptStatusOut
from fastapi_app.app.services.ingest import Located

log = logging.getLogger(__name__)

router = APIRouter(tags=["receipts"])


@router.get(
    "/ingest/{ingest_id}",
    response_model=ReceiptStatusOut,
    responses=receipt_errors("record", store="receipt store"),
    openapi_extra={"security": SECURITY},
    summary="Where an ingested record is now",
    operation_id=RECEIPT_OPERATION_ID,
)
async def get_receipt(
    ingest_id: Annotated[str, Path(max_length=MAX_ID_LENGTH)],
    principal: PrincipalDep,
    service: ServiceDep,
) -> Response:
    """The receipt of one record: durable (outbox/Kafka) -> landed (bronze, or quarantine) ->
    curated (silver, or quarantine), or lost (its topic was recreated before landing reached
    it)."""
    if not well_formed(ingest_id):
        message = (
            "ingest_id is not an ingest id: expected k1.<topic id>.<partition>.<offset>."
            "<timestamp ms>.<mac> or o1.<outbox id>.<mac>, as an ingest answer gave it"
        )
        raise ApiError(
            422,
            message,
            detail=[{"loc": ["path", "ingest_id"], "msg": message, "type": "ingest_id_format"}],
        )
    try:
        located = await service.get_receipt(ingest_id, principal=principal)
    except Exception as exc:
        log.warning("receipt lookup failed: %s", exc)
        raise ApiError(
            503,
            "the receipt store is unavailable; retry after the Retry-After delay",
            headers={"Retry-After": str(service.settings.retry_after_s)},
        ) from None
    if located is None:
        raise ApiError(
            404,
            f"no record with ingest id {ingest_id}",
            detail=[
                {"loc": ["path", "ingest_id"], "msg": "unknown ingest id", "type": "not_found"}
            ],
        )
    return Response(orjson.dumps(_body(located)), media_type="application/json")


def _body(located: Located) -> dict[str, Any]:
    place, later = located.place, located.later
    by_curation = later.quarantined_by == "curation"
    stages: list[dict[str, Any]] = []
    if isinstance(place, KafkaPlace):
        received_at: datetime | None = datetime.fromtimestamp(place.timestamp_ms / 1000, UTC)
        topic = _TOPICS.get(later.entity or "")
        where = f"kafka {topic or place.topic_id} partition {place.partition} offset {place.offset}"
        destination: dict[str, Any] | None = destination_dict(
            "kafka", topic=topic, partition=place.partition, offset=place.offset
        )
    else:
        received_at = later.received_at
        where = f"postgres outbox row {place.outbox_id}"
        destination = (
            None
            if later.details_expired
            else destination_dict("postgres", outbox_id=place.outbox_id)
        )
    if received_at is not None:
        stages.append({"stage": "accepted", "at": received_at, "where": None})
        stages.append({"stage": "durable", "at": received_at, "where": where})
    if later.landed_at is not None:
        if later.quarantine_reason is not None and not by_curation:
            landed = f"quarantine: {later.quarantine_reason}"
        elif later.bronze_version is not None and not isinstance(place, KafkaPlace):
            # Landing reports its latest append, which may be a later version than the record's.
            landed = f"bronze Delta table version {later.bronze_version}"
        else:
            landed = "bronze Delta table"
        stages.append({"stage": "landed", "at": later.landed_at, "where": landed})
    if later.curated_at is not None:
        # A record curation quarantined went through curation, into quarantine, not silver.
        curated = f"quarantine: {later.quarantine_reason}" if by_curation else "silver Delta table"
        stages.append({"stage": "curated", "at": later.curated_at, "where": curated})
    return {
        "ingest_id": located.ingest_id,
        "entity": later.entity,
        "record_key": later.record_key,
        "status": _status(located),
        "received_at": received_at,
        "durable_at": received_at,
        "destination": destination,
        "quarantine_reason": later.quarantine_reason,
        "details_expired": later.details_expired,
        "stages": stages,
        "hint": _LOST_HINT if located.lost else None,
    }


#: What a client does about a lost record (docs/API.md, idempotency).
_LOST_HINT = (
    "the record's Kafka topic was recreated before the record landed and no restore brought "
    "it back: resend the request with the same Idempotency-Key to publish it again (without "
    "one, send the record again)"
)


def _status(located: Located) -> str:
    later = located.later
    if located.lost:
        return "lost"
    if later.curated_at is not None and later.quarantine_reason is None:
        return "curated"
    if later.landed_at is not None or later.details_expired:
        return "landed"
    return "durable"


#: `<domain>.<entity>` -> its Kafka topic.
_TOPICS = {entity_label(entity): entity.topic for entity in ENTITIES}
