"""The lakehouse's Delta tables: created from their schemas, evolved only when that is safe.

Landing creates bronze and its quarantine table (`ensure_landing_tables`); curation creates
silver, gold, its quarantine and state tables (`ensure_curation_tables`) and re-checks bronze.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

from dataplatform.contracts import Entity
from dataplatform.contracts.bronze import BRONZE_PARTITION_COLUMNS
from dataplatform.delta_checkpoints import INLINE_CHECKPOINTS_OFF
from dataplatform.lake import (
    CURATION_STATE_TABLE,
    Lake,
    QuarantineTable,
    quarantine_path,
)
from dataplatform.products import GOLD_PARTITION, product_of
from pyspark_jobs import transforms
from pyspark_jobs.delta_tables import ensure_table
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


def ensure_landing_tables(spark: SparkSession, lake: Lake, entity: Entity) -> None:
    """Create the entity's bronze and landing quarantine tables if missing.

    Bronze has the change data feed on: curation reads only the versions it has not
    processed yet. A bronze table from before the order token gains its two nullable columns.
    Neither is checkpointed inside a commit, also when it already existed: landing writes
    their checkpoints itself, outside the micro-batch (`dataplatform.delta_checkpoints`).
    """
    interval = str(INLINE_CHECKPOINTS_OFF)
    ensure_table(
        spark,
        lake,
        entity.table_path("bronze"),
        bronze_schema(),
        partitioned_by=BRONZE_PARTITION_COLUMNS,
        properties={"delta.enableChangeDataFeed": "true", CHECKPOINT_INTERVAL: interval},
    )
    ensure_table_property(spark, lake, entity.table_path("bronze"), CHECKPOINT_INTERVAL, interval)
    ensure_quarantine_table(spark, lake, entity, "landing")
    ensure_table_property(
        spark, lake, quarantine_path(entity, "landing"), CHECKPOINT_INTERVAL, interval
    )


def ensure_curation_tables(spark: SparkSession, lake: Lake, entity: Entity) -> None:
    """Create silver, gold, quarantine and state tables if missing; evolve silver's schema."""
    silver = entity.table_path("silver")
    # The change feed of each MERGE tells which days' gold rows changed (old and new event
    # dates), without scanning silver; downstream consumers can follow it too.
    ensure_table(
        spark,
        lake,
        silver,
        transforms.silver_schema(entity),
        properties={"delta.enableChangeDataFeed": "true"},
    )
    # A silver table from before the change feed was used: turn it on from now.
    ensure_table_property(spark, lake, silver, "delta.enableChangeDataFeed", "true")
    product = product_of(entity)
    ensure_table(
        spark,
        lake,
        product.gold_table,
        gold_schema(product),
        partitioned_by=(GOLD_PARTITION.name,),
    )
    ensure_quarantine_table(spark, lake, entity, "curation")
    ensure_table(spark, lake, CURATION_STATE_TABLE, STATE_SCHEMA)


def ensure_quarantine_table(
    spark: SparkSession, lake: Lake, entity: Entity, table: QuarantineTable
) -> None:
    """Create `quarantine/<table>/<domain>/<entity>` if missing (evolve it if older)."""
    ensure_table(
        spark,
        lake,
        quarantine_path(entity, table),
        transforms.QUARANTINE_SCHEMA,
        partitioned_by=("quarantine_date",),
    )


def ensure_table_property(
    spark: SparkSession, lake: Lake, table: str, key: str, value: str
) -> None:
    """Set a Delta table property unless it already has that value (no commit then)."""
    existing = lake.delta_rs(table)
    if existing is not None and existing.metadata().configuration.get(key) != value:
        logger.info("%s: setting %s = %s", table, key, value)
        spark.sql(f"ALTER TABLE delta.`{lake.uri(table)}` SET TBLPROPERTIES ('{key}' = '{value}')")
