"""The OpenLineage runs of the Spark jobs: which datasets each job reads and writes.

The events themselves (names, facets, transports, the Delta copy) are built by
`dataplatform.lineage`; this module adds what only the jobs know: the Spark schemas of the
datasets and the command-line options that link a run to the Airflow task that started it.
"""

from __future__ import annotations

import argparse

from pyspark.sql.types import StructType

from dataplatform.contracts import Entity
from dataplatform.lake import Lake
from dataplatform.lineage import (
    JobRun,
    LineageEmitter,
    ParentRun,
    gold_job,
    gold_table,
    landing_job,
    quarantine_dataset,
    silver_job,
    table_dataset,
    topic_dataset,
)
from dataplatform.settings import KafkaSettings
from pyspark_jobs import transforms
from pyspark_jobs.schemas import bronze_schema, contract_schema


def schema_fields(schema: StructType) -> tuple[tuple[str, str], ...]:
    """`(column, Spark SQL type)` pairs: the OpenLineage schema facet of a table."""
    return tuple((item.name, item.dataType.simpleString()) for item in schema.fields)


def _parent_or_none(text: str) -> ParentRun | None:
    """`ParentRun.parse`, but an empty value (no parent known) is None."""
    return ParentRun.parse(text) if text.strip() else None


def add_lineage_args(parser: argparse.ArgumentParser) -> None:
    """The options linking a job's runs to the run that started it (an Airflow task)."""
    parser.add_argument(
        "--lineage-parent",
        type=_parent_or_none,
        help="<namespace>/<job>/<run id> of the parent run (Airflow's lineage_parent_id macro)",
    )
    parser.add_argument(
        "--lineage-root",
        type=_parent_or_none,
        help="<namespace>/<job>/<run id> of the root run (Airflow's lineage_root_parent_id)",
    )


def landing_run(
    emitter: LineageEmitter,
    lake: Lake,
    kafka: KafkaSettings,
    entity: Entity,
    topic: str,
    *,
    parent: ParentRun | None = None,
    root: ParentRun | None = None,
) -> JobRun:
    """The run of one entity's landing query: topic -> bronze (and landing quarantine)."""
    return JobRun(
        emitter,
        landing_job(entity),
        inputs=[topic_dataset(kafka, topic, schema_fields(contract_schema(entity.model)))],
        outputs=[
            table_dataset(lake, entity.table_path("bronze"), schema_fields(bronze_schema())),
            quarantine_dataset(
                lake, entity, "landing", schema_fields(transforms.QUARANTINE_SCHEMA)
            ),
        ],
        parent=parent,
        root=root,
    )


def silver_run(
    emitter: LineageEmitter,
    lake: Lake,
    entity: Entity,
    *,
    parent: ParentRun | None = None,
    root: ParentRun | None = None,
) -> JobRun:
    """The curation step bronze -> silver (and curation quarantine) of one entity."""
    return JobRun(
        emitter,
        silver_job(entity),
        inputs=[table_dataset(lake, entity.table_path("bronze"), schema_fields(bronze_schema()))],
        outputs=[
            table_dataset(
                lake, entity.table_path("silver"), schema_fields(transforms.silver_schema(entity))
            ),
            quarantine_dataset(
                lake, entity, "curation", schema_fields(transforms.QUARANTINE_SCHEMA)
            ),
        ],
        parent=parent,
        root=root,
    )


def gold_run(
    emitter: LineageEmitter,
    lake: Lake,
    entity: Entity,
    gold_schema: StructType,
    *,
    parent: ParentRun | None = None,
    root: ParentRun | None = None,
) -> JobRun:
    """The curation step silver -> gold of one entity."""
    return JobRun(
        emitter,
        gold_job(entity),
        inputs=[
            table_dataset(
                lake, entity.table_path("silver"), schema_fields(transforms.silver_schema(entity))
            )
        ],
        outputs=[table_dataset(lake, gold_table(entity), schema_fields(gold_schema))],
        parent=parent,
        root=root,
    )
