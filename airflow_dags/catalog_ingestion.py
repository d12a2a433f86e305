"""
# catalog_ingestion

Fills the OpenMetadata catalog (compose, advanced profile) by running the ingestion workflows
of `docker/openmetadata/workflows/` with OpenMetadata's own CLI (`metadata ingest -c <file>`):

1. `postgres`, `kafka`, `deltalake`, `airflow`: the platform's database, topics, Delta tables
   on S3 and this Airflow's DAGs become catalog services with their tables, topics and
   pipelines;
2. `openlineage`: then the OpenLineage events of the Spark jobs and of Airflow's tasks, read
   from the `openlineage.events.v1` topic, become lineage edges between those entities.

* **Where:** compose only. OpenMetadata cannot run natively; there the Variables below do not
  exist and every task is skipped, saying so. The workflow files are validated natively by
  `tests/unit/test_openmetadata_workflows.py`.
* **Needs:** the Variables `openmetadata_workflows_dir` and `openmetadata_cli` (compose sets
  them) and `OPENMETADATA_JWT_TOKEN` in the environment (the ingestion-bot's token, from `.env`;
  a task is skipped until it is set).
* **Idempotent:** OpenMetadata upserts the entities by name. Tasks retry twice, then log a
  JSON alert (`dataplatform.alerts`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronTriggerTimetable, dag, task
from common import DEFAULT_ARGS, alert_on_failure

#: The workflows creating the catalog's services, then the lineage between their entities.
SOURCES = ("postgres", "kafka", "deltalake", "airflow")
LINEAGE = "openlineage"

#: Bash for one workflow; exit code 99 marks the task skipped (BashOperator's default).
_INGEST = """\
set -euo pipefail
workflows="{{ var.value.get('openmetadata_workflows_dir', '') }}"
cli="{{ var.value.get('openmetadata_cli', '') }}"
if [ -z "$workflows" ] || [ -z "$cli" ]; then
  echo "OpenMetadata is compose-only: no openmetadata_workflows_dir/openmetadata_cli Variable"
  exit 99
fi
if [ -z "${OPENMETADATA_JWT_TOKEN:-}" ]; then
  echo "OPENMETADATA_JWT_TOKEN is empty: set the ingestion-bot's token in .env (docs/LINEAGE.md)"
  exit 99
fi
exec "$cli" ingest -c "$workflows/%s.yaml"
"""


def _ingest(workflow: str) -> Any:
    """The task running one workflow file."""

    @task.bash(task_id=f"ingest_{workflow}")
    def ingest() -> str:
        return _INGEST % workflow

    return ingest()


@dag(
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
    # No start_date: the first run waits for the next tick (see curation).
    catchup=False,
    max_active_runs=1,
    tags=["dataplatform", "catalog", "openmetadata", "lineage"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=alert_on_failure,
)
def catalog_ingestion() -> None:
    """The services first, then the lineage between their entities."""
    lineage = _ingest(LINEAGE)
    for source in SOURCES:
        _ingest(source) >> lineage


catalog_ingestion()
