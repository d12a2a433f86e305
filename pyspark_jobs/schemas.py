"""Spark schemas derived from the contracts, so Spark never holds a hand-written copy of them.

Pure functions over the pydantic models, `BRONZE_COLUMNS` and the gold columns of
`dataplatform.products`: no Spark session is needed (`pyspark.sql.types` is plain Python).
"""

from __future__ import annotations

import types
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from dataplatform.contracts.bronze import BRONZE_COLUMNS, DeltaType
from dataplatform.products import DataProduct, GoldType

#: Decimal of gold sums (`decimal(30,6)` in `dataplatform.products`).
SUM_TYPE = DecimalType(30, 6)

#: Python types with one obvious Spark type. `Decimal` is absent: it needs its constraints.
_SCALAR_TYPES: dict[type, DataType] = {
    str: StringType(),
    bool: BooleanType(),
    int: LongType(),
    float: DoubleType(),
    datetime: TimestampType(),
    date: DateType(),
}

_DELTA_TYPES: dict[DeltaType, DataType] = {
    "string": StringType(),
    "integer": IntegerType(),
    "long": LongType(),
    "timestamp": TimestampType(),
    "date": DateType(),
}

_GOLD_TYPES: dict[GoldType, DataType] = {
    "string": StringType(),
    "long": LongType(),
    "date": DateType(),
    "decimal(30,6)": SUM_TYPE,
}


def contract_schema(model: type[BaseModel]) -> StructType:
    """Derive the Spark schema of a contract, field by field, in declaration order.

    `str` and string `Literal`s become `StringType`, `Decimal` a `DecimalType` with the
    field's `max_digits`/`decimal_places`, `datetime` a `TimestampType`; a field that accepts
    `None` is nullable, every other one is not.

    Args:
        model: A pydantic contract such as `FinancialTransactionIn`.

    Returns:
        The `StructType`, with each field's description (if any) as its `comment` metadata.

    Raises:
        TypeError: A field has a type with no Spark counterpart here, or a `Decimal` without
            `max_digits` and `decimal_places` (Spark would otherwise pick a precision that
            silently rounds money).
    """
    return StructType(
        [_contract_field(model, name, info) for name, info in model.model_fields.items()]
    )


def _contract_field(model: type[BaseModel], name: str, info: FieldInfo) -> StructField:
    annotation, nullable = _strip_optional(info.annotation)
    base, metadata = _strip_annotated(annotation)
    try:
        data_type = _spark_type(base, [*info.metadata, *metadata])
    except TypeError as exc:
        raise TypeError(f"{model.__name__}.{name}: {exc}") from exc
    comment = {"comment": info.description} if info.description else {}
    return StructField(name, data_type, nullable=nullable, metadata=comment)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (annotation, False)."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return annotation, False
    members = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(members) != 1:
        raise TypeError(f"union {annotation!r} has no single Spark type")
    return members[0], len(members) < len(get_args(annotation))


def _strip_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    """`Annotated[X, m1, m2]` -> (X, [m1, m2]), flattening the metadata of nested `Field`s."""
    if get_origin(annotation) is not Annotated:
        return annotation, []
    base, *extras = get_args(annotation)
    metadata: list[Any] = []
    for extra in extras:
        metadata.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
    return base, metadata


def _spark_type(base: Any, metadata: list[Any]) -> DataType:
    if get_origin(base) is Literal:
        values = get_args(base)
        if all(isinstance(value, str) for value in values):
            return StringType()
        raise TypeError(f"Literal{list(values)} mixes non-string values")
    if base is Decimal:
        return _decimal_type(metadata)
    if isinstance(base, type) and base in _SCALAR_TYPES:
        return _SCALAR_TYPES[base]
    raise TypeError(f"no Spark type for {base!r}")


def _decimal_type(metadata: list[Any]) -> DecimalType:
    precision = next((m.max_digits for m in metadata if getattr(m, "max_digits", None)), None)
    scale = next(
        (m.decimal_places for m in metadata if getattr(m, "decimal_places", None) is not None),
        None,
    )
    if precision is None or scale is None:
        raise TypeError("Decimal needs max_digits and decimal_places to pick a DecimalType")
    return DecimalType(precision=precision, scale=scale)


def bronze_schema() -> StructType:
    """The bronze layer's schema, from `BRONZE_COLUMNS` (descriptions become comments)."""
    return StructType(
        [
            StructField(
                name, _DELTA_TYPES[delta_type], nullable=nullable, metadata={"comment": comment}
            )
            for name, delta_type, nullable, comment in BRONZE_COLUMNS
        ]
    )


def gold_schema(product: DataProduct) -> StructType:
    """The gold table's schema, from the product's declared columns."""
    return StructType(
        [
            StructField(column.name, _GOLD_TYPES[column.type], nullable=column.nullable)
            for column in product.gold_table_columns
        ]
    )
