"""The lakehouse's Delta tables: created from their schemas, evolved only when that is safe.

Landing creates bronze and its quarantine table (`ensure_landing_tables`); curation creates
silver, gold, its quarantine and state tables (`ensure_curation_tables`) and re-checks bronze.
"""

from __future__ import annotations

import logging

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

from dataplatform.contracts import Entity
from dataplatform.contracts.bronze import BRONZE_PARTITION_COLUMNS
from dataplatform.lake import (
    CURATION_STATE_TABLE,
    Lake,
    QuarantineTable,
    get_lakehouse_settings,
    quarantine_path,
)
from dataplatform.products import GOLD_PARTITION, product_of
from pyspark_jobs import transforms
from pyspark_jobs.schemas import bronze_schema, gold_schema

logger = logging.getLogger(__name__)

#: Delta table property: commits between two checkpoints of the table's state.
CHECKPOINT_INTERVAL = "delta.checkpointInterval"

#: `_state/curation_runs`: one row per finished curation run of an entity.
STATE_SCHEMA = StructType(
    [
        StructField("entity", StringType(), nullable=False),
        StructField("run_id", StringType(), nullable=False),
        StructField("bronze_version_from", LongType(), nullable=False),
        StructField("bronze_version_to", LongType(), nullable=False),
        StructField("rows_read", LongType(), nullable=False),
        StructField("rows_quarantined", LongType(), nullable=False),
        StructField("rows_merged", LongType(), nullable=False),
        # Gold is complete for silver up to this version (the run's own MERGE).
        StructField("silver_version", LongType(), nullable=True),
        StructField("finished_at", TimestampType(), nullable=False),
        # The first silver version whose changes this run recomputed gold for.
        StructField("silver_version_from", LongType(), nullable=True),
    ]
)


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


def ensure_curation_tables(spark: SparkSession, lake: Lake, entity: Entity) -> None:
    """Create silver, gold, quarantine and state tables if missing; evolve silver's schema."""
    silver = lake.table("silver", entity)
    schema = transforms.silver_schema(entity)
    (
        DeltaTable.createIfNotExists(spark)
        .location(silver)
        .addColumns(schema)
        # The change feed of each MERGE tells which days' gold rows changed (old and new
        # event dates), without scanning silver; downstream consumers can follow it too.
        .property("delta.enableChangeDataFeed", "true")
        .execute()
    )
    evolve_schema(spark, silver, schema, table=entity.table_path("silver"))
    # A silver table from before the change feed was used: turn it on from now.
    ensure_table_property(
        spark, lake, entity.table_path("silver"), "delta.enableChangeDataFeed", "true"
    )
    (
        DeltaTable.createIfNotExists(spark)
        .location(lake.gold(entity))
        .addColumns(gold_schema(product_of(entity)))
        .partitionedBy(GOLD_PARTITION.name)
        .execute()
    )
    ensure_quarantine_table(spark, lake, entity, "curation")
    state = lake.uri(CURATION_STATE_TABLE)
    DeltaTable.createIfNotExists(spark).location(state).addColumns(STATE_SCHEMA).execute()
    evolve_schema(spark, state, STATE_SCHEMA, table=CURATION_STATE_TABLE)


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
