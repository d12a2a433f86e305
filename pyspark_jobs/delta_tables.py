"""Delta tables in general: created from a schema, evolved only when that is safe, small appends.

Knows no entity or layer (`pyspark_jobs.tables` declares the lakehouse's tables with these), so
any job module can use it without an import loop.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from dataplatform.lake import Lake
from dataplatform.lakelock import table_commit_lock
from dataplatform.settings import get_postgres_settings

logger = logging.getLogger(__name__)


class SchemaEvolutionError(RuntimeError):
    """The contract changed in a way a table cannot follow without a migration."""


def evolve_schema(
    spark: SparkSession,
    uri: str,
    desired: StructType,
    *,
    table: str,
    current: StructType | None = None,
) -> list[str]:
    """Bring a table's schema in line with `desired`, when that is safe.

    New nullable columns are added and NOT NULL columns the contract made optional are
    relaxed: both keep every existing row valid. Anything else (a changed type, a new required
    column, a required column that disappeared) is refused: rows already in the table could
    not satisfy it, and rewriting history is a migration, not a side effect of a run.

    Args:
        spark: The session.
        uri: The Delta table.
        desired: The schema the job writes.
        table: The table's name for messages.
        current: The table's schema, when already read (`table_schema`); by default Spark
            reads it.

    Returns:
        The DDL statements applied.

    Raises:
        SchemaEvolutionError: The change is incompatible; the message says why and how to
            migrate.
    """
    schema = current if current is not None else spark.read.format("delta").load(uri).schema
    current_fields = {f.name: f for f in schema.fields}
    wanted = {f.name: f for f in desired.fields}
    problems, statements = [], []
    target = f"delta.`{uri}`"
    for name, new in wanted.items():
        old = current_fields.get(name)
        if old is None:
            if not new.nullable:
                problems.append(
                    f"new column {name} is required (NOT NULL) but existing rows have no value"
                )
                continue
            statements.append(
                f"ALTER TABLE {target} ADD COLUMNS (`{name}` {new.dataType.simpleString()})"
            )
        elif old.dataType != new.dataType:
            problems.append(
                f"column {name} is {old.dataType.simpleString()} in {table} but "
                f"{new.dataType.simpleString()} in the contract"
            )
        elif not old.nullable and new.nullable:
            statements.append(f"ALTER TABLE {target} ALTER COLUMN `{name}` DROP NOT NULL")
    for name, old in current_fields.items():
        if name not in wanted and not old.nullable:
            problems.append(f"required column {name} of {table} is no longer in the contract")
    if problems:
        raise SchemaEvolutionError(
            f"incompatible schema change for {table}: "
            + "; ".join(problems)
            + ". Adding optional fields is automatic; for this change publish a new contract "
            "version (a new topic `<domain>.<entity>.v<N+1>` and tables), or migrate the table "
            "explicitly and backfill it from bronze."
        )
    for statement in statements:
        logger.warning("schema evolution of %s: %s", table, statement)
        spark.sql(statement)
    return statements


def table_schema(lake: Lake, table: str) -> StructType | None:
    """The schema of `table` read from its Delta log with delta-rs (None if it does not exist).

    The log holds the schema in Spark's own JSON form, so no Spark job reads it: a job that
    checks a handful of tables at start pays milliseconds instead of a snapshot load each.
    """
    existing = lake.delta_rs(table)
    if existing is None:
        return None
    return StructType.fromJson(json.loads(existing.schema().to_json()))


def ensure_table(
    spark: SparkSession,
    lake: Lake,
    table: str,
    schema: StructType,
    *,
    partitioned_by: tuple[str, ...] = (),
    properties: dict[str, str] | None = None,
) -> None:
    """Create `table` from `schema` if it does not exist, else evolve it (`evolve_schema`).

    Created from the schema rather than by the first write, so NOT NULL columns stay NOT
    NULL. `properties` are set at creation only (`ensure_table_property` sets them later).

    Raises:
        SchemaEvolutionError: The table exists with a schema `schema` cannot evolve from.
    """
    uri = lake.uri(table)
    current = table_schema(lake, table)
    if current is None:
        builder = DeltaTable.createIfNotExists(spark).location(uri).addColumns(schema)
        if partitioned_by:
            builder = builder.partitionedBy(*partitioned_by)
        for key, value in (properties or {}).items():
            builder = builder.property(key, value)
        builder.execute()
        # Another process may have created it first, from an older schema.
    evolve_schema(spark, uri, schema, table=table, current=current)


def append_rows(lake: Lake, table: str, schema: StructType, rows: list[tuple[Any, ...]]) -> None:
    """Append a few rows to the existing Delta table `table` with delta-rs, holding the
    table's commit lock (`dataplatform.lakelock`) for the whole write.

    For the jobs' bookkeeping (run state, expectation results): a handful of rows that cost a
    Spark job and a snapshot load each through Spark, and tens of milliseconds here.
    """
    from deltalake import write_deltalake
    from pyspark.sql.pandas.types import to_arrow_schema

    names = schema.fieldNames()
    data = pa.Table.from_pylist(
        [dict(zip(names, row, strict=True)) for row in rows], schema=to_arrow_schema(schema)
    )
    uri = lake.uri(table, scheme="s3")
    with table_commit_lock(get_postgres_settings(), uri):
        write_deltalake(uri, data, mode="append", storage_options=lake.s3.delta_storage_options())
