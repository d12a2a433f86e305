"""`platform_backup` on the real native Airflow: the nightly dump restores."""

from __future__ import annotations

from dataplatform.backup import read_manifest, verify_backup
from dataplatform.native.services import PLATFORM_DATABASES
from dataplatform.settings import get_postgres_settings, get_runtime_settings, get_s3_settings
from tests.integration.airflow_support import (
    run_summary,
    start_airflow,
    task_instances,
    trigger,
    wait_for_dag,
    wait_for_run,
    xcom,
)

DAG = "platform_backup"


def test_platform_backup_run_produces_a_dump_that_restores() -> None:
    api = start_airflow()
    try:
        wait_for_dag(api, DAG)
        run_id = trigger(api, DAG)
        state = wait_for_run(api, DAG, run_id, timeout_s=600)
        assert state == "success", run_summary(api, DAG, run_id)
        states = {task: ti["state"] for task, ti in task_instances(api, DAG, run_id).items()}
        assert states == {"backup_postgres": "success", "verify_backup": "success"}
        uri = xcom(api, DAG, run_id, "backup_postgres")
    finally:
        api.close()

    s3 = get_s3_settings()
    postgres = get_postgres_settings()
    manifest = read_manifest(uri, s3)
    assert {dump.database for dump in manifest.dumps} == {postgres.db, *PLATFORM_DATABASES}
    airflow_dump = next(dump for dump in manifest.dumps if dump.database == "airflow")
    # The backup ran inside Airflow: its own run is in the metadata snapshot it dumped.
    assert airflow_dump.row_counts["public.dag_run"] >= 1
    # Restored again here, independently of the DAG's own check.
    checks = verify_backup(
        uri, postgres=postgres, s3=s3, bin_dir=get_runtime_settings().postgres_bin_dir
    )
    assert all(check.ok for check in checks)
    assert {check.database for check in checks} == {postgres.db, *PLATFORM_DATABASES}
