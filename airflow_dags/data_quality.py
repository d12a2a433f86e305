"""
# data_quality

Runs the data-quality expectations of each curated entity with
`pyspark_jobs/quality.py --entity <domain>/<entity> --run-id <run id>`, which publishes the
results to the quality result table.

* **When:** as soon as `curation` updates a silver table (asset-triggered), so every curated
  batch is checked.
* **Fails loudly:** a "fail" expectation makes the job exit non-zero; the task fails after its
  retries, the run is marked failed and a JSON alert is logged (`dataplatform.alerts`).
  "warn" expectations are recorded in the result table and do not fail the run.
"""

from __future__ import annotations

from airflow.sdk import AssetAny, dag
from common import DEFAULT_ARGS, ENTITIES, alert_on_failure, slug, spark_job, table_asset

#: Any silver table with new data triggers a run.
SILVER_TABLES = AssetAny(*(table_asset("silver", entity) for entity in ENTITIES))


@dag(
    schedule=SILVER_TABLES,
    catchup=False,
    max_active_runs=1,
    tags=["dataplatform", "quality", "spark"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=alert_on_failure,
)
def data_quality() -> None:
    """One expectations job per entity."""
    for entity in ENTITIES:
        spark_job(
            task_id=f"check_{slug(entity)}",
            job="quality.py",
            args=["--entity", entity, "--run-id", "{{ run_id }}"],
            inlets=[table_asset("silver", entity)],
        )


data_quality()
