"""Each Airflow task run links to its Spark job runs, on the real native Airflow and Kafka.

The `curation` DAG is triggered over REST; Airflow's OpenLineage provider sends the DAG run's
and each task run's events to the lineage topic (`AIRFLOW_OPENLINEAGE_TRANSPORT=kafka`), and the
curation job started by each task sends its silver and gold runs' events there too. Read back
from the topic, every job run must name its task run as its parent (namespace, `<dag>.<task>`
and the very run id the provider emitted for that task instance) and the DAG run as its root;
so must the claim-notes join (`join_claim_notes`, `dataplatform lake join-claim-notes`).
One DAG run is two Spark jobs and the join: 6 minutes on this (loaded) machine, plus any
curation run already active, which the test waits for (10 minutes in all when it met one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataplatform import lineage
from dataplatform.clients.kafka import ensure_topics
from dataplatform.contracts import ENTITIES
from dataplatform.documents import curation as claim_notes
from dataplatform.native.airflow import AirflowApi, get_airflow_settings
from dataplatform.settings import (
    LINEAGE_TOPIC,
    KafkaSettings,
    get_lineage_settings,
    get_s3_settings,
)
from tests.factories import claim, transaction
from tests.integration.airflow_support import (
    RECORD_KEYS,
    curation_api,
    run_summary,
    trigger,
    wait_for_run,
    write_bronze,
)
from tests.integration.lakehouse_support import end_offsets
from tests.integration.lineage_support import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DAG = "curation"
FACTORIES = {"finance/transactions": transaction, "insurance/claims": claim}


@pytest.fixture(scope="module")
def api() -> Iterator[AirflowApi]:
    yield from curation_api()


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


def test_curation_task_runs_are_the_parents_of_their_spark_job_runs(
    api: AirflowApi, kafka_settings: KafkaSettings
) -> None:
    airflow = get_airflow_settings()
    assert airflow.openlineage_transport == "kafka", (
        "the provider sends its events to the task logs, not the lineage topic: set "
        "AIRFLOW_OPENLINEAGE_TRANSPORT=kafka in .env (as .env.example does) and restart Airflow"
    )
    namespace = airflow.openlineage_namespace
    assert get_lineage_settings().namespace == namespace, "LINEAGE_NAMESPACE differs"
    # New bronze rows, so that every step of both jobs has something to curate; written once
    # no other curation run is active, so that the run under test is the one to curate them.
    for active in api.call("GET", f"/dags/{DAG}/dagRuns", params={"state": ["queued", "running"]})[
        "dag_runs"
    ]:
        wait_for_run(api, DAG, active["dag_run_id"])
    s3 = get_s3_settings()
    for entity in RECORD_KEYS:
        write_bronze(s3, entity, [FACTORIES[entity]() for _ in range(2)])
    ensure_topics(kafka_settings, [LINEAGE_TOPIC])
    start = end_offsets(kafka_settings, [LINEAGE_TOPIC])[LINEAGE_TOPIC]

    run_id = trigger(api, DAG)
    assert wait_for_run(api, DAG, run_id) == "success", run_summary(api, DAG, run_id)
    events = read_topic(kafka_settings, start)

    # The provider's events: the DAG run, and each task run with its START and COMPLETE.
    ours = [e for e in events if _dag_run_id(e) == run_id]
    dag_runs = {e["run"]["runId"] for e in ours if e["job"]["name"] == DAG}
    assert len(dag_runs) == 1, f"no single DAG run event for {run_id}: {dag_runs}"
    dag_run = (namespace, DAG, dag_runs.pop())
    children_of = {
        f"{DAG}.curate_{entity.domain}_{entity.name}": (
            lineage.silver_job(entity),
            lineage.gold_job(entity),
        )
        for entity in ENTITIES
    }
    children_of[f"{DAG}.join_claim_notes"] = (claim_notes.JOB,)
    for task, jobs in children_of.items():
        task_events = [e for e in ours if e["job"]["name"] == task]
        task_runs = {e["run"]["runId"] for e in task_events}
        assert len(task_runs) == 1, f"{task}: {task_runs}"
        task_run = (namespace, task, task_runs.pop())
        assert {e["eventType"] for e in task_events} >= {"START", "COMPLETE"}, task
        assert all(e["job"]["namespace"] == namespace for e in task_events), task
        assert {_run_of(e, "parent") for e in task_events} == {dag_run}, task

        # The job's runs (a Spark job's silver, then gold unless silver had nothing new, e.g.
        # when the hourly run came first), each a child of that task run.
        children = [e for e in events if _run_of(e, "parent") == task_run]
        started = {e["job"]["name"] for e in children}
        assert jobs[0] in started and started <= set(jobs), (task, started)
        assert {(e["job"]["name"], e["eventType"]) for e in children} == {
            (job, kind) for job in started for kind in ("START", "COMPLETE")
        }, task
        assert all(e["job"]["namespace"] == namespace for e in children), task
        assert {_run_of(e, "root") for e in children} == {dag_run}, task
