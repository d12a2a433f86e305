"""What the platform's DAGs share: defaults, the failure alert, assets and Spark submission.

Imported by the DAG files (the DAG folder is on `sys.path`); listed in `.airflowignore` so the
DAG processor does not parse it as a DAG file. Nothing here does I/O at import time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset

#: The lake's bucket (one bucket, `lakehouse`, by design).
LAKE = "s3://lakehouse"
#: `<domain>/<entity>` of every curated entity: `dataplatform.products.DAG_ENTITIES`, which the
#: DAG processor cannot import (it runs in Airflow's own virtualenv, without the platform's
#: code); tests/unit/test_products.py fails when the two differ.
ENTITIES: tuple[str, ...] = ("finance/transactions", "insurance/claims")
#: Spark connection, pool and the Variable naming the jobs' folder; `dataplatform up` creates
#: them from `.env` (see `dataplatform.native.airflow`).
SPARK_CONNECTION_ID = "spark_default"
SPARK_POOL = "spark"
#: `priority_weight` of curation's Spark job: fresh data goes before maintenance and quality
#: jobs (weight 1) waiting for the same pool slot.
CURATION_PRIORITY = 10
JOBS_DIR_VARIABLE = "pyspark_jobs_dir"
#: Comma-separated jars for `--jars` (Delta, Kafka source, s3a): the JVM starts before Python.
JARS_VARIABLE = "spark_jars"
OWNER = "data-platform"

alerts = logging.getLogger("dataplatform.alerts")


def alert_on_failure(context: Any) -> None:
    """Log one JSON line describing the failure, for log-based alerting to pick up.

    Used both as the task callback (after the last retry) and as the DAG run callback.
    """
    dag_run = context.get("dag_run")
    task_instance = context.get("task_instance") or context.get("ti")
    exception = context.get("exception")
    alert = {
        "alert": "airflow_failure",
        "severity": "error",
        "dag_id": getattr(dag_run, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None),
        "task_id": getattr(task_instance, "task_id", None),
        "try_number": getattr(task_instance, "try_number", None),
        "reason": str(exception or context.get("reason") or "unknown"),
    }
    alerts.error(json.dumps(alert, default=str, sort_keys=True))


#: `--lineage-parent`/`--lineage-root` of a Spark job: the task run and its DAG run, as the
#: OpenLineage provider names them, so the job's runs carry the parent run facet. Empty (no
#: link) when the provider is disabled and its macros do not exist.
_PLUGIN = "macros.OpenLineageProviderPlugin"
LINEAGE_ARGS: tuple[str, ...] = tuple(
    item
    for option, macro in (
        ("--lineage-parent", "lineage_parent_id"),
        ("--lineage-root", "lineage_root_parent_id"),
    )
    for item in (
        option,
        f"{{% if {_PLUGIN} is defined and {_PLUGIN}.{macro} is defined %}}"
        f"{{{{ {_PLUGIN}.{macro}(task_instance) }}}}{{% endif %}}",
    )
)

#: Every task: owner, two retries with backoff, and the alert once retries are exhausted.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": alert_on_failure,
}


def slug(entity: str) -> str:
    """`finance/transactions` -> `finance_transactions` (task and group ids)."""
    return entity.replace("/", "_")


def table_asset(layer: str, entity: str) -> Asset:
    """The Delta table `<layer>/<domain>/<entity>` as an Asset named by its URI."""
    return Asset(f"{LAKE}/{layer}/{entity}")


#: The driver JVM's options of every job the DAGs submit (short batch jobs): the library's
#: `dataplatform.spark_settings.BATCH_JOB_JAVA_OPTIONS`, which Airflow's environment cannot
#: import (a unit test keeps the two equal).
BATCH_JOB_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"


def spark_job(
    *,
    task_id: str,
    job: str,
    args: Sequence[str],
    inlets: Sequence[Asset] = (),
    outlets: Sequence[Asset] = (),
    priority_weight: int = 1,
) -> SparkSubmitOperator:
    """Submit `pyspark_jobs/<job>` with the `spark_default` connection's master.

    The jobs' folder and jars come from the `pyspark_jobs_dir` and `spark_jars` Variables, so
    the same DAG runs natively, in compose and on a cluster; the `spark` pool bounds how many
    JVMs run at once, and of the tasks waiting for it the one with the highest
    `priority_weight` (absolute, not summed over downstream tasks) goes first.
    """
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONNECTION_ID,
        application=f"{{{{ var.value.{JOBS_DIR_VARIABLE} }}}}/{job}",
        application_args=list(args),
        jars=f"{{{{ var.value.get('{JARS_VARIABLE}', '') }}}}",
        conf={"spark.driver.extraJavaOptions": BATCH_JOB_JAVA_OPTIONS},
        name=f"{{{{ dag.dag_id }}}}.{task_id}",
        pool=SPARK_POOL,
        priority_weight=priority_weight,
        weight_rule="absolute",
        execution_timeout=timedelta(hours=1),
        inlets=list(inlets),
        outlets=list(outlets),
    )
