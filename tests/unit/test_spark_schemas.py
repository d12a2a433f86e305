"""Spark schemas derived from the contracts: no Spark session, no service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from pyspark.sql.types import (
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    TimestampType,
)

from dataplatform.contracts import CLAIMS, ENTITIES, TRANSACTIONS, Entity
from dataplatform.contracts.bronze import BRONZE_COLUMNS, BRONZE_PARTITION_COLUMNS
from pyspark_jobs.schemas import bronze_schema, contract_schema

pytestmark = pytest.mark.unit

#: The Delta columns the silver tables get from each contract. A change here changes the
#: schema of existing Delta tables: make it a new contract version, then update this pin.
PINNED_CONTRACT_SCHEMAS: dict[str, str] = {
    TRANSACTIONS.topic: (
        "struct<transaction_id:string,timestamp:timestamp,account_id:string,"
        "amount:decimal(18,6),currency:string,transaction_type:string,"
        "merchant_id:string,category:string>"
    ),
    CLAIMS.topic: (
        "struct<claim_id:string,timestamp:timestamp,policy_number:string,"
        "claim_amount:decimal(18,6),claim_type:string,claim_status:string,"
        "customer_id:string,incident_date:timestamp>"
    ),
}


def _json_schema_kind(prop: dict[str, Any]) -> tuple[type[DataType], bool]:
    """The Spark type class and nullability pydantic's JSON Schema implies for one property.

    An independent reading of the contract: if the Spark derivation and the JSON Schema
    (which the OpenAPI spec is made of) ever disagree, one of them drifted. Decimal precision
    is not in the JSON Schema; the pinned schemas below check it.
    """
    options = prop.get("anyOf", [prop])
    nullable = any(option.get("type") == "null" for option in options)
    kinds = [option for option in options if option.get("type") != "null"]
    if any(option.get("format") == "date-time" for option in kinds):
        return TimestampType, nullable
    if any(option.get("type") == "number" for option in kinds):
        # pydantic renders a Decimal as a number or a numeric string.
        return DecimalType, nullable
    assert [option.get("type") for option in kinds] == ["string"], prop
    return StringType, nullable


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.topic)
def test_contract_schema_matches_json_schema(entity: Entity) -> None:
    json_schema = entity.model.model_json_schema()
    required = set(json_schema["required"])

    schema = contract_schema(entity.model)

    assert schema.fieldNames() == list(json_schema["properties"])
    for field in schema.fields:
        expected_type, json_nullable = _json_schema_kind(json_schema["properties"][field.name])
        assert type(field.dataType) is expected_type, field.name
        assert field.nullable == (json_nullable or field.name not in required), field.name


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.topic)
def test_contract_schema_matches_pinned_delta_columns(entity: Entity) -> None:
    assert contract_schema(entity.model).simpleString() == PINNED_CONTRACT_SCHEMAS[entity.topic]


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.topic)
def test_contract_schema_keeps_key_and_event_time_required(entity: Entity) -> None:
    schema = contract_schema(entity.model)

    assert schema[entity.key_field].nullable is False
    assert schema[entity.event_time_field].dataType == TimestampType()
    assert schema[entity.event_time_field].nullable is False


def test_contract_schema_takes_decimal_precision_from_constraints() -> None:
    class Priced(BaseModel):
        price: Decimal = Field(max_digits=10, decimal_places=2)
        fee: Decimal | None = Field(default=None, max_digits=7, decimal_places=0)

    schema = contract_schema(Priced)

    assert schema["price"] == StructField("price", DecimalType(10, 2), nullable=False)
    assert schema["fee"] == StructField("fee", DecimalType(7, 0), nullable=True)


def test_contract_schema_maps_literals_and_timestamps() -> None:
    class Event(BaseModel):
        kind: Literal["a", "b"]
        at: datetime = Field(description="when it happened")
        note: str | None = None

    schema = contract_schema(Event)

    assert schema.simpleString() == "struct<kind:string,at:timestamp,note:string>"
    assert [f.nullable for f in schema.fields] == [False, False, True]
    assert schema["at"].metadata == {"comment": "when it happened"}


def test_contract_schema_rejects_decimal_without_constraints() -> None:
    class Unbounded(BaseModel):
        amount: Decimal

    with pytest.raises(TypeError, match=r"Unbounded\.amount: Decimal needs max_digits"):
        contract_schema(Unbounded)


def test_contract_schema_rejects_unmapped_type() -> None:
    class Nested(BaseModel):
        tags: list[str]

    with pytest.raises(TypeError, match=r"Nested\.tags: no Spark type"):
        contract_schema(Nested)


def test_bronze_schema_follows_bronze_columns() -> None:
    schema = bronze_schema()

    assert [(f.name, f.nullable, f.metadata["comment"]) for f in schema.fields] == [
        (name, nullable, comment) for name, _, nullable, comment in BRONZE_COLUMNS
    ]
    assert set(BRONZE_PARTITION_COLUMNS) <= set(schema.fieldNames())


def test_bronze_schema_uses_delta_types() -> None:
    types = {f.name: f.dataType for f in bronze_schema().fields}

    assert types["payload"] == StringType()
    assert types["kafka_partition"] == IntegerType()
    assert types["kafka_offset"] == LongType()
    assert types["ingested_at"] == TimestampType()
    assert types["ingest_date"] == DateType()
