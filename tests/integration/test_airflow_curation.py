"""`curation` on the real native Airflow: asset- and REST-triggered runs, exactly-once silver,
idempotent re-runs and retries. Each run is one Spark job for every entity: expect a few
minutes per test.

Needs the curation job (`pyspark_jobs/curation.py --entity <domain>/<entity>... --run-id <id>`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplatform.native.airflow import JOBS_DIR_VARIABLE, AirflowApi, jobs_folder
from dataplatform.settings import S3Settings, get_s3_settings
from tests.factories import claim, transaction
from tests.integration.airflow_support import (
    RECORD_KEYS,
    clear_run,
    read_silver,
    run_summary,
    set_paused,
    start_airflow,
    task_instances,
    trigger,
    upsert_variable,
    wait_for_dag,
    wait_for_run,
    write_bronze,
)

DAG = "curation"
FACTORIES = {"finance/transactions": transaction, "insurance/claims": claim}
NEW_RECORDS = 3


@pytest.fixture(scope="module")
def api() -> Iterator[AirflowApi]:
    client = start_airflow()
    wait_for_dag(client, DAG)
    wait_for_dag(client, "data_quality")
    # Every curation run updates silver, which triggers data_quality; its Spark jobs would
    # queue in the one-slot `spark` pool in front of the runs under test.
    was_paused = set_paused(client, "data_quality", True)
    yield client
    set_paused(client, "data_quality", was_paused)
    client.close()


@pytest.fixture(scope="module")
def s3() -> S3Settings:
    return get_s3_settings()


def _asset_triggered_run(api: AirflowApi, s3: S3Settings, timeout_s: float = 120) -> str:
    """Post an asset event on a bronze table; return the curation run it triggers."""
    uri = s3.lake_uri("bronze/finance/transactions")
    assets = api.call("GET", "/assets", params={"uri_pattern": uri})["assets"]
    asset_id = next(asset["id"] for asset in assets if asset["uri"] == uri)
    seen = {run["dag_run_id"] for run in api.call("GET", f"/dags/{DAG}/dagRuns")["dag_runs"]}
    api.call("POST", "/assets/events", json={"asset_id": asset_id, "extra": {"from": "test"}})
    deadline = time.monotonic() + timeout_s
    while True:
        runs = api.call("GET", f"/dags/{DAG}/dagRuns", params={"run_type": "asset_triggered"})
        fresh = [run["dag_run_id"] for run in runs["dag_runs"] if run["dag_run_id"] not in seen]
        if fresh:
            return str(fresh[0])
        assert time.monotonic() < deadline, f"no asset-triggered run within {timeout_s:.0f}s"
        time.sleep(3)


def test_curation_adds_exactly_the_new_records_and_rerun_changes_nothing(
    api: AirflowApi, s3: S3Settings
) -> None:
    # An asset event on a bronze table starts a run at once. It curates whatever bronze
    # already held, so the REST-triggered run after it sees only the records written here.
    set_paused(api, DAG, False)
    drain = _asset_triggered_run(api, s3)
    assert wait_for_run(api, DAG, drain) == "success", run_summary(api, DAG, drain)
    before = {entity: read_silver(s3, entity) for entity in RECORD_KEYS}
    new_keys: dict[str, set[str]] = {}
    for entity, key in RECORD_KEYS.items():
        records = [FACTORIES[entity]() for _ in range(NEW_RECORDS)]
        write_bronze(s3, entity, records)
        new_keys[entity] = {record[key] for record in records}

    run_id = trigger(api, DAG)
    assert wait_for_run(api, DAG, run_id) == "success", run_summary(api, DAG, run_id)

    after = {entity: read_silver(s3, entity) for entity in RECORD_KEYS}
    for entity, key in RECORD_KEYS.items():
        old = {row[key] for row in before[entity]}
        assert len(after[entity]) == len(before[entity]) + NEW_RECORDS, entity
        assert {row[key] for row in after[entity]} - old == new_keys[entity], entity

    # The same run again (same run id and interval): silver must not change at all.
    clear_run(api, DAG, run_id)
    assert wait_for_run(api, DAG, run_id, min_try=2) == "success", run_summary(api, DAG, run_id)
    assert {entity: read_silver(s3, entity) for entity in RECORD_KEYS} == after


def test_curation_task_failing_once_is_retried_and_the_run_succeeds(
    api: AirflowApi, tmp_path: Path
) -> None:
    # The jobs folder points at a copy whose curation.py fails on its first attempt and then
    # runs the real job: the DAG itself is untouched.
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for job in jobs_folder().glob("*.py"):
        if job.name != "curation.py":
            (jobs / job.name).symlink_to(job)
    (jobs / "curation.py").write_text(
        "import pathlib, runpy, sys\n"
        "marker = pathlib.Path(__file__).with_name('failed-once')\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    sys.exit('failing on purpose, once')\n"
        f"sys.argv[0] = {str(jobs_folder() / 'curation.py')!r}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    jobs.chmod(0o755)
    upsert_variable(api, JOBS_DIR_VARIABLE, str(jobs))
    try:
        run_id = trigger(api, DAG)
        assert wait_for_run(api, DAG, run_id) == "success", run_summary(api, DAG, run_id)
    finally:
        upsert_variable(api, JOBS_DIR_VARIABLE, str(jobs_folder()))
    tasks = task_instances(api, DAG, run_id)
    assert set(tasks) == {"curate"}
    assert (tasks["curate"]["state"], tasks["curate"]["try_number"]) == ("success", 2)
    assert (jobs / "failed-once").exists()
