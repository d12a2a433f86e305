"""
# curation

Curates each domain's bronze Delta table into silver (typed, deduplicated, MERGEd on the record
key) and gold (aggregates) with one task, `curate`: one `pyspark_jobs/curation.py` Spark job
for every entity (`--entity` per entity), so a run starts one JVM, not one per entity, and an
entity whose bronze has no new version costs no Spark work (with none anywhere, no session).

* **When:** every hour, and as soon as a bronze table has new data: an asset event on
  `s3://lakehouse/bronze/<domain>/<entity>` (posted by whatever writes bronze, e.g.
  `POST /api/v2/assets/events`) triggers a run at once.
* **Idempotent:** the job MERGEs on the record key and is given the run id, so running a
  run again (Clear in the UI) adds nothing.
* **Claim notes:** once every entity is curated, `join_claim_notes` rebuilds
  `silver/insurance/claims_with_notes` (the curated claims with their notes and adjuster
  reports from `silver/documents/documents`) with `dataplatform lake join-claim-notes`.
* **Lineage:** the job's OpenLineage runs (`curation.<domain>.<entity>.silver|gold`,
  `curation.insurance.claims_with_notes`) name the task's run as their parent
  (`--lineage-parent`, the provider's `lineage_parent_id`).
* **Spark pool:** `curate` waits for the one-slot `spark` pool like every Spark job, but
  ahead of the lake_maintenance and data_quality jobs queued there (higher priority weight).
* **Downstream:** the `curate` task updates every silver table's asset, which triggers
  `data_quality`.
* **On failure:** tasks retry twice with backoff, then log a JSON alert (`dataplatform.alerts`).
"""

from __future__ import annotations

from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from common import (
    CURATION_PRIORITY,
    DEFAULT_ARGS,
    ENTITIES,
    LINEAGE_ARGS,
    alert_on_failure,
    spark_job,
    table_asset,
)

#: Any bronze table with new data triggers a run.
BRONZE_TABLES = AssetAny(*(table_asset("bronze", entity) for entity in ENTITIES))


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@hourly", timezone="UTC"), assets=BRONZE_TABLES
    ),
    # No start_date: the first run waits for the next tick rather than running the latest
    # missed one the moment the DAG is unpaused (a burst of Spark jobs on every fresh `up`).
    catchup=False,
    max_active_runs=1,
    tags=["dataplatform", "curation", "spark"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=alert_on_failure,
)
def curation() -> None:
    """Bronze -> silver -> gold of every entity, one Spark job; then the claims' notes."""
    curated = spark_job(
        task_id="curate",
        job="curation.py",
        args=[
            *(arg for entity in ENTITIES for arg in ("--entity", entity)),
            "--run-id",
            "{{ run_id }}",
            *LINEAGE_ARGS,
        ],
        inlets=[table_asset("bronze", entity) for entity in ENTITIES],
        outlets=[table_asset("silver", entity) for entity in ENTITIES],
        priority_weight=CURATION_PRIORITY,
    )

    @task.bash(
        inlets=[
            table_asset("silver", "insurance/claims"),
            table_asset("silver", "documents/documents"),
        ],
        outlets=[table_asset("silver", "insurance/claims_with_notes")],
    )
    def join_claim_notes() -> str:
        # `--option=value`: an empty value (no lineage provider) stays an empty value.
        options = " ".join(
            f"{option}='{value}'"
            for option, value in zip(LINEAGE_ARGS[::2], LINEAGE_ARGS[1::2], strict=True)
        )
        return f"dataplatform lake join-claim-notes {options}"

    curated >> join_claim_notes()


curation()
