"""`curation` on the real native Airflow: asset- and REST-triggered runs, exactly-once silver,
idempotent re-runs, retries, and each task run the parent of the job runs it starts.

One REST-triggered run serves three tests (`curated_run`): exactly the new records reach silver;
every job run it starts (the curation job's silver and gold runs, the claim-notes join) names
its task run as its OpenLineage parent, read back from the lineage topic where Airflow's
provider (`AIRFLOW_OPENLINEAGE_TRANSPORT=kafka`) and the jobs send their events; and running it
again changes nothing. Each run is one Spark job for every entity: expect a few minutes.

Needs the curation job (`pyspark_jobs/curation.py --entity <domain>/<entity>... --run-id <id>`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dataplatform import lineage
from dataplatform.clients.kafka import ensure_topics
from dataplatform.contracts import ENTITIES
from dataplatform.documents import curation as claim_notes
from dataplatform.native.airflow import (
    JOBS_DIR_VARIABLE,
    AirflowApi,
    get_airflow_settings,
    jobs_folder,
)
from dataplatform.settings import (
    LINEAGE_TOPIC,
    KafkaSettings,
    S3Settings,
    get_lineage_settings,
    get_s3_settings,
)
from tests.factories import claim, transaction
from tests.integration.airflow_support import (
    RECORD_KEYS,
    clear_run,
    curation_api,
    read_silver,
    run_summary,
    set_paused,
    task_instances,
    trigger,
    upsert_variable,
    wait_for_run,
    wait_until_idle,
    write_bronze,
)
from tests.integration.lakehouse_support import end_offsets
from tests.integration.lineage_support import read_topic

DAG = "curation"
FACTORIES = {"finance/transactions": transaction, "insurance/claims": claim}
NEW_RECORDS = 3


@pytest.fixture(scope="module")
def api() -> Iterator[AirflowApi]:
    yield from curation_api()


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


@dataclass(frozen=True)
class CuratedRun:
    """A REST-triggered run over new bronze records: silver before and after, its events."""

    run_id: str
    before: dict[str, list[dict[str, Any]]]
    after: dict[str, list[dict[str, Any]]]
    new_keys: dict[str, set[str]]
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def curated_run(api: AirflowApi, s3: S3Settings, kafka_settings: KafkaSettings) -> CuratedRun:
    assert get_airflow_settings().openlineage_transport == "kafka", (
        "the provider sends its events to the task logs, not the lineage topic: set "
        "AIRFLOW_OPENLINEAGE_TRANSPORT=kafka in .env (as .env.example does) and restart Airflow"
    )
    # An asset event on a bronze table starts a run at once. It curates whatever bronze
    # already held, and any run queued beside it (the hourly one, when the hour turned) is
    # waited for too, so the REST-triggered run after them sees only the records written here.
    set_paused(api, DAG, False)
    drain = _asset_triggered_run(api, s3)
    assert wait_for_run(api, DAG, drain) == "success", run_summary(api, DAG, drain)
    wait_until_idle(api, DAG)
    before = {entity: read_silver(s3, entity) for entity in RECORD_KEYS}
    new_keys: dict[str, set[str]] = {}
    for entity, key in RECORD_KEYS.items():
        records = [FACTORIES[entity]() for _ in range(NEW_RECORDS)]
        write_bronze(s3, entity, records)
        new_keys[entity] = {record[key] for record in records}
    ensure_topics(kafka_settings, [LINEAGE_TOPIC])
    start = end_offsets(kafka_settings, [LINEAGE_TOPIC])[LINEAGE_TOPIC]

    run_id = trigger(api, DAG)
    assert wait_for_run(api, DAG, run_id) == "success", run_summary(api, DAG, run_id)
    after = {entity: read_silver(s3, entity) for entity in RECORD_KEYS}
    return CuratedRun(run_id, before, after, new_keys, read_topic(kafka_settings, start))


def test_curation_adds_exactly_the_new_records(curated_run: CuratedRun) -> None:
    for entity, key in RECORD_KEYS.items():
        old = {row[key] for row in curated_run.before[entity]}
        after = curated_run.after[entity]
        assert len(after) == len(curated_run.before[entity]) + NEW_RECORDS, entity
        assert {row[key] for row in after} - old == curated_run.new_keys[entity], entity


def _run_of(event: dict[str, Any], key: str) -> tuple[str, str, str] | None:
    """`(namespace, job, run id)` of the event's parent (`key="parent"`) or root run."""
    parent = (event["run"].get("facets") or {}).get("parent")
    if parent is None:
        return None
    link = parent if key == "parent" else parent.get("root")
    if link is None:
        return None
    return link["job"]["namespace"], link["job"]["name"], link["run"]["runId"]


def _dag_run_id(event: dict[str, Any]) -> str | None:
    """The Airflow run id a provider event belongs to: its `airflow` run facet (task runs) or
    its `airflowDagRun` run facet (the DAG run)."""
    facets = event["run"].get("facets") or {}
    facet = facets.get("airflow") or facets.get("airflowDagRun") or {}
    return (facet.get("dagRun") or {}).get("run_id")


def test_curation_task_runs_are_the_parents_of_their_job_runs(curated_run: CuratedRun) -> None:
    namespace = get_airflow_settings().openlineage_namespace
    assert get_lineage_settings().namespace == namespace, "LINEAGE_NAMESPACE differs"
    events = curated_run.events
    # The provider's events: the DAG run, and each task run with its START and COMPLETE.
    ours = [e for e in events if _dag_run_id(e) == curated_run.run_id]
    dag_runs = {e["run"]["runId"] for e in ours if e["job"]["name"] == DAG}
    assert len(dag_runs) == 1, f"no single DAG run event for {curated_run.run_id}: {dag_runs}"
    dag_run = (namespace, DAG, dag_runs.pop())
    # Every entity has new records, so the curation job runs silver and gold of each.
    children_of = {
        f"{DAG}.curate": {
            job
            for entity in ENTITIES
            for job in (lineage.silver_job(entity), lineage.gold_job(entity))
        },
        f"{DAG}.join_claim_notes": {claim_notes.JOB},
    }
    for task, jobs in children_of.items():
        task_events = [e for e in ours if e["job"]["name"] == task]
        task_runs = {e["run"]["runId"] for e in task_events}
        assert len(task_runs) == 1, f"{task}: {task_runs}"
        task_run = (namespace, task, task_runs.pop())
        assert {e["eventType"] for e in task_events} >= {"START", "COMPLETE"}, task
        assert all(e["job"]["namespace"] == namespace for e in task_events), task
        assert {_run_of(e, "parent") for e in task_events} == {dag_run}, task

        children = [e for e in events if _run_of(e, "parent") == task_run]
        assert {(e["job"]["name"], e["eventType"]) for e in children} == {
            (job, kind) for job in jobs for kind in ("START", "COMPLETE")
        }, task
        assert all(e["job"]["namespace"] == namespace for e in children), task
        assert {_run_of(e, "root") for e in children} == {dag_run}, task


def test_curation_run_again_changes_nothing(
    api: AirflowApi, s3: S3Settings, curated_run: CuratedRun
) -> None:
    # The same run again (same run id and interval): silver must not change at all.
    run_id = curated_run.run_id
    clear_run(api, DAG, run_id)
    assert wait_for_run(api, DAG, run_id, min_try=2) == "success", run_summary(api, DAG, run_id)
    assert {entity: read_silver(s3, entity) for entity in RECORD_KEYS} == curated_run.after


def test_curation_task_failing_once_is_retried_and_the_run_succeeds(
    api: AirflowApi, tmp_path: Path
) -> None:
    # The jobs folder points at a copy whose curation.py fails on the first attempt of a
    # manual run and then runs the real job (an hourly run starting meanwhile is not the one
    # that fails): the DAG itself is untouched.
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for job in jobs_folder().glob("*.py"):
        if job.name != "curation.py":
            (jobs / job.name).symlink_to(job)
    (jobs / "curation.py").write_text(
        "import pathlib, runpy, sys\n"
        "marker = pathlib.Path(__file__).with_name('failed-once')\n"
        "if not marker.exists() and any(a.startswith('manual__') for a in sys.argv):\n"
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
    assert set(tasks) == {"curate", "join_claim_notes"}
    assert (tasks["curate"]["state"], tasks["curate"]["try_number"]) == ("success", 2)
    assert tasks["join_claim_notes"]["state"] == "success"
    assert (jobs / "failed-once").exists()
