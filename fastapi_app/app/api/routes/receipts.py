"""Receipts: where an ingested record is now."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Response

from fastapi_app.app.api.deps import PrincipalDep, ServiceDep
from fastapi_app.app.api.errors import ApiError
from fastapi_app.app.api.ingesting import RECEIPT_OPERATION_ID, SECURITY, receipt_errors
from fastapi_app.app.api.receipt_bodies import destination_dict
from fastapi_app.app.models import ReceiptStatusOut

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
async def get_receipt(ingest_id: UUID, principal: PrincipalDep, service: ServiceDep) -> Response:
    """The receipt of one record: accepted -> durable (outbox/Kafka) -> landed (bronze)."""
    try:
        view = await service.get_receipt(ingest_id, principal=principal)
    except Exception as exc:
        log.warning("receipt lookup failed: %s", exc)
        raise ApiError(
            503,
            "the receipt store is unavailable; retry after the Retry-After delay",
            headers={"Retry-After": str(service.settings.retry_after_s)},
        ) from None
    if view is None:
        raise ApiError(
            404,
            f"no record with ingest id {ingest_id}",
            detail=[
                {"loc": ["path", "ingest_id"], "msg": "unknown ingest id", "type": "not_found"}
            ],
        )
    receipt = view.receipt
    stages: list[dict[str, Any]] = [{"stage": "accepted", "at": receipt.received_at, "where": None}]
    if receipt.status == "durable" and receipt.durable_at is not None:
        where = (
            f"kafka {receipt.kafka_topic} partition {receipt.kafka_partition} "
            f"offset {receipt.kafka_offset}"
            if receipt.kafka_topic is not None
            else f"postgres outbox row {receipt.outbox_id}"
        )
        stages.append({"stage": "durable", "at": receipt.durable_at, "where": where})
    status: str = receipt.status
    if view.landed_at is not None:
        status = "landed"
        version = "" if view.delta_version is None else f" version {view.delta_version}"
        stages.append(
            {"stage": "landed", "at": view.landed_at, "where": f"bronze Delta table{version}"}
        )
    body = {
        "ingest_id": receipt.ingest_id,
        "entity": receipt.entity,
        "record_key": receipt.record_key,
        "status": status,
        "received_at": receipt.received_at,
        "durable_at": receipt.durable_at,
        "destination": destination_dict(receipt),
        "stages": stages,
    }
    return Response(orjson.dumps(body), media_type="application/json")
