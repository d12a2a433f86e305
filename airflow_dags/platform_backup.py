"""
# platform_backup

Nightly backup of the platform's PostgreSQL databases (the platform's own and Airflow's
metadata) to `s3://lakehouse/_backups/postgres/<date>/`, then a restore check:

1. `backup_postgres`: `dataplatform backup postgres` dumps each database (pg_dump, custom
   format) inside one snapshot, records every table's row count in that snapshot into a
   manifest, and uploads dumps and manifest; the last line it prints is the backup's URI.
2. `verify_backup`: `dataplatform backup verify <uri>` restores each dump into a scratch
   database `backup_check_<timestamp>_<db>`, compares the row counts with the manifest, and
   drops the scratch database.

Re-running a day overwrites that day's backup. Tasks retry twice, then log a JSON alert
(`dataplatform.alerts`). Restore by hand: see `docs/AIRFLOW.md`.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task
from common import DEFAULT_ARGS, alert_on_failure


@dag(
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    # No start_date: the first run waits for the next tick rather than running the latest
    # missed one the moment the DAG is unpaused (a burst of Spark jobs on every fresh `up`).
    catchup=False,
    max_active_runs=1,
    tags=["dataplatform", "backup", "postgres", "dr"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=alert_on_failure,
)
def platform_backup() -> None:
    """Dump to S3, then prove the dump restores."""

    @task.bash
    def backup_postgres() -> str:
        # run_after, not logical_date: a manual run has no logical date.
        return "dataplatform backup postgres --date {{ dag_run.run_after | ds }}"

    @task.bash
    def verify_backup(uri: str) -> str:
        import shlex

        return f"dataplatform backup verify {shlex.quote(uri)}"

    verify_backup(backup_postgres())


platform_backup()
