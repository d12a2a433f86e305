"""The lakehouse's Delta tables: created from their schemas, evolved only when that is safe.

Landing creates bronze and its quarantine table; curation creates silver, gold, its quarantine
and state tables and re-checks bronze: both use these functions.
"""

from __future__ import annotations

import logging

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from dataplatform.contracts import Entity
from dataplatform.contracts.bronze import BRONZE_PARTITION_COLUMNS
from dataplatform.lake import Lake, QuarantineTable, get_lakehouse_settings, quarantine_path
from pyspark_jobs import transforms
from pyspark_jobs.schemas import bronze_schema

logger = logging.getLogger(__name__)

#: Delta table property: commits between two checkpoints of the table's state.
CHECKPOINT_INTERVAL = "delta.checkpointInterval"


class SchemaEvolutionError(RuntimeError):
    """The contract changed in a way a table cannot follow without a migration."""


def evolve_schema(spark: SparkSession, uri: str, desired: StructType, *, table: str) -> list[str]:
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

    Returns:
        The DDL statements applied.

    Raises:
        SchemaEvolutionError: The change is incompatible; the message says why and how to
            migrate.
    """
    current = {f.name: f for f in spark.read.format("delta").load(uri).schema.fields}
    wanted = {f.name: f for f in desired.fields}
    problems, statements = [], []
    target = f"delta.`{uri}`"
    for name, new in wanted.items():
        old = current.get(name)
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
    for name, old in current.items():
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


def ensure_landing_tables(spark: SparkSession, lake: Lake, entity: Entity) -> None:
    """Create the entity's bronze and landing quarantine tables if missing.

    Created from the schemas rather than by the first write, so the NOT NULL columns stay
    NOT NULL. Bronze has the change data feed on: curation reads only the versions it has not
    processed yet. A bronze table from before the order token gains its two nullable columns.
    Both get `LAKEHOUSE_BRONZE_CHECKPOINT_INTERVAL`, also on existing tables.
    """
    interval = str(get_lakehouse_settings().bronze_checkpoint_interval)
    bronze = lake.table("bronze", entity)
    (
        DeltaTable.createIfNotExists(spark)
        .location(bronze)
        .addColumns(bronze_schema())
        .partitionedBy(*BRONZE_PARTITION_COLUMNS)
        .property("delta.enableChangeDataFeed", "true")
        .property(CHECKPOINT_INTERVAL, interval)
        .execute()
    )
    evolve_schema(spark, bronze, bronze_schema(), table=entity.table_path("bronze"))
    ensure_table_property(spark, lake, entity.table_path("bronze"), CHECKPOINT_INTERVAL, interval)
    ensure_quarantine_table(spark, lake, entity, "landing")
    ensure_table_property(
        spark, lake, quarantine_path(entity, "landing"), CHECKPOINT_INTERVAL, interval
    )


def ensure_quarantine_table(
    spark: SparkSession, lake: Lake, entity: Entity, table: QuarantineTable
) -> None:
    """Create `quarantine/<table>/<domain>/<entity>` if missing (evolve it if older)."""
    uri = lake.quarantine(entity, table)
    (
        DeltaTable.createIfNotExists(spark)
        .location(uri)
        .addColumns(transforms.QUARANTINE_SCHEMA)
        .partitionedBy("quarantine_date")
        .execute()
    )
    evolve_schema(spark, uri, transforms.QUARANTINE_SCHEMA, table=quarantine_path(entity, table))


def ensure_table_property(
    spark: SparkSession, lake: Lake, table: str, key: str, value: str
) -> None:
    """Set a Delta table property unless it already has that value (no commit then)."""
    existing = lake.delta_rs(table)
    if existing is not None and existing.metadata().configuration.get(key) != value:
        logger.info("%s: setting %s = %s", table, key, value)
        spark.sql(f"ALTER TABLE delta.`{lake.uri(table)}` SET TBLPROPERTIES ('{key}' = '{value}')")
