"""
# lake_maintenance

Daily upkeep of every bronze and silver Delta table with `pyspark_jobs/maintenance.py`:

1. `optimize --table <layer>/<domain>/<entity>`: compacts small files (bronze: only its closed
   `ingest_date` partitions, before today, so the landing job's partition is left alone);
2. `vacuum --table ... --retention-hours 168`: removes files no longer referenced, keeping
   seven days of time travel (the job refuses a shorter retention);
3. `history --table ...`: logs the table's latest commits into the task log.

Tables are maintained one after another (the `spark` pool); a table's failure does not stop
the others. Tasks retry twice, then log a JSON alert (`dataplatform.alerts`).
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, TaskGroup, dag
from common import DEFAULT_ARGS, ENTITIES, alert_on_failure, slug, spark_job

#: Hours of history VACUUM keeps: Delta's default, and the floor the job enforces.
RETENTION_HOURS = 168
TABLES = tuple(f"{layer}/{entity}" for layer in ("bronze", "silver") for entity in ENTITIES)


@dag(
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
    # No start_date: the first run waits for the next tick rather than running the latest
    # missed one the moment the DAG is unpaused (a burst of Spark jobs on every fresh `up`).
    catchup=False,
    max_active_runs=1,
    tags=["dataplatform", "maintenance", "spark", "delta"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=alert_on_failure,
)
def lake_maintenance() -> None:
    """OPTIMIZE, then VACUUM, then log the history of each table."""
    for table in TABLES:
        with TaskGroup(group_id=slug(table)):
            optimize = spark_job(
                task_id="optimize", job="maintenance.py", args=["optimize", "--table", table]
            )
            vacuum = spark_job(
                task_id="vacuum",
                job="maintenance.py",
                args=["vacuum", "--table", table, "--retention-hours", str(RETENTION_HOURS)],
            )
            history = spark_job(
                task_id="history", job="maintenance.py", args=["history", "--table", table]
            )
            optimize >> vacuum >> history


lake_maintenance()
