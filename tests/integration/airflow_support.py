"""Helpers for the tests on the real native Airflow: start it, drive it over REST v2, feed bronze.

Airflow is started the way users start it, `dataplatform up --track advanced`, unless it
already answers. Everything else goes through the public REST API with the admin's token.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from dataplatform.contracts.bronze import BRONZE_PARTITION_COLUMNS, kafka_bronze_rows
from dataplatform.exporter import bronze_arrow_schema
from dataplatform.native.airflow import AirflowApi, component_healthy, get_airflow_settings
from dataplatform.settings import S3Settings

#: The components the health endpoint reports on; all must be healthy.
COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")
#: Natural key of each curated entity (the MERGE key of silver).
RECORD_KEYS = {"finance/transactions": "transaction_id", "insurance/claims": "claim_id"}
TERMINAL = {"success", "failed"}
#: The DAGs besides curation whose tasks take the `spark` pool.
OTHER_SPARK_DAGS = ("data_quality", "lake_maintenance")


def airflow_healthy() -> bool:
    """True when the API server and every Airflow component report healthy."""
    settings = get_airflow_settings()
    return all(component_healthy(settings, component) for component in COMPONENTS)


def start_airflow() -> AirflowApi:
    """Airflow up (through `dataplatform up --track advanced` if needed) and logged in."""
    if not airflow_healthy():
        cli = Path(sys.executable).parent / "dataplatform"
        subprocess.run([str(cli), "up", "--track", "advanced"], check=True, timeout=900)
    assert airflow_healthy(), (
        "Airflow is not healthy after `dataplatform up --track advanced`: are the Airflow "
        "services registered in TRACK_SERVICES['advanced']? See docs/AIRFLOW.md"
    )
    return AirflowApi(get_airflow_settings())


def curation_api() -> Iterator[AirflowApi]:
    """Airflow logged in, `curation` parsed, the other Spark DAGs paused; restored afterwards.

    A curation run updates silver, which triggers data_quality, and a platform that was up at
    03:00 UTC has lake_maintenance runs to catch up: their Spark jobs would take the one-slot
    `spark` pool in turn with the runs under test (minutes each on two cores). Both are paused
    while the module runs. For a module fixture:
    `yield from curation_api()`.
    """
    client = start_airflow()
    wait_for_dag(client, "curation")
    for dag_id in OTHER_SPARK_DAGS:
        wait_for_dag(client, dag_id)
    was_paused = {dag_id: set_paused(client, dag_id, True) for dag_id in OTHER_SPARK_DAGS}
    try:
        yield client
    finally:
        for dag_id, paused in was_paused.items():
            set_paused(client, dag_id, paused)
        client.close()


def wait_for_dag(api: AirflowApi, dag_id: str, timeout_s: float = 180) -> None:
    """Wait until the DAG processor has parsed `dag_id` (new files take up to a minute)."""
    deadline = time.monotonic() + timeout_s
    while api.request("GET", f"/dags/{dag_id}").status_code != 200:
        assert time.monotonic() < deadline, f"DAG {dag_id} not listed after {timeout_s:.0f}s"
        time.sleep(3)


def set_paused(api: AirflowApi, dag_id: str, paused: bool) -> bool:
    """Pause or unpause a DAG; return whether it was paused before."""
    before = bool(api.call("GET", f"/dags/{dag_id}")["is_paused"])
    api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})
    return before


def trigger(api: AirflowApi, dag_id: str) -> str:
    """Unpause `dag_id`, create a manual run (no logical date), return its run id."""
    set_paused(api, dag_id, False)
    run = api.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    return str(run["dag_run_id"])


def task_instances(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's task instances by task id."""
    body = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def wait_until_idle(api: AirflowApi, dag_id: str, *, timeout_s: float = 1200) -> None:
    """Wait until no run of `dag_id` is queued or running (e.g. the hourly run, queued behind
    the test's own when the hour turned, would curate the records the next run is meant to)."""
    deadline = time.monotonic() + timeout_s
    while True:
        active = api.call(
            "GET", f"/dags/{dag_id}/dagRuns", params={"state": ["queued", "running"]}
        )["dag_runs"]
        if not active:
            return
        assert time.monotonic() < deadline, (
            f"{dag_id} runs still active after {timeout_s:.0f}s: "
            f"{[run['dag_run_id'] for run in active]}"
        )
        time.sleep(5)


def wait_for_run(
    api: AirflowApi, dag_id: str, run_id: str, *, min_try: int = 1, timeout_s: float = 1200
) -> str:
    """Wait until the run ends with every task at try `min_try` or later; return its state."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        tries = [ti["try_number"] for ti in task_instances(api, dag_id, run_id).values()]
        if state in TERMINAL and tries and min(tries) >= min_try:
            return str(state)
        assert time.monotonic() < deadline, f"{dag_id} {run_id} still {state} after {timeout_s}s"
        time.sleep(5)


def run_summary(api: AirflowApi, dag_id: str, run_id: str) -> str:
    """`task: state (try n)` for each task of a run, for assertion messages."""
    tasks = task_instances(api, dag_id, run_id)
    return f"{dag_id} {run_id}: " + ", ".join(
        f"{task_id}: {ti['state']} (try {ti['try_number']})"
        for task_id, ti in sorted(tasks.items())
    )


def clear_run(api: AirflowApi, dag_id: str, run_id: str) -> None:
    """Run every task of a finished run again (the UI's Clear): same run id, same interval."""
    api.call(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        json={"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True},
    )


def xcom(api: AirflowApi, dag_id: str, run_id: str, task_id: str) -> Any:
    """The value a task returned."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return api.call("GET", path)["value"]


def upsert_variable(api: AirflowApi, key: str, value: str) -> None:
    """Create or replace an Airflow Variable."""
    api.upsert("variables", key, {"key": key, "value": value})


# --------------------------------------------------------------------------- the lake


def write_bronze(s3: S3Settings, entity: str, records: Iterable[dict[str, Any]]) -> None:
    """Append records to `bronze/<entity>` in the bronze layout, as the landing job writes them."""
    rows = kafka_bronze_rows(
        records,
        key_field=RECORD_KEYS[entity],
        topic=f"{entity.replace('/', '.')}.v1",
        at=datetime.now(UTC),
    )
    write_deltalake(
        s3.lake_uri(f"bronze/{entity}"),
        pa.Table.from_pylist(rows, schema=bronze_arrow_schema()),
        mode="append",
        partition_by=list(BRONZE_PARTITION_COLUMNS),
        storage_options=s3.delta_storage_options(),
    )


def read_silver(s3: S3Settings, entity: str) -> list[dict[str, Any]]:
    """Every row of `silver/<entity>`, sorted by record key (empty before the first curation)."""
    try:
        table = DeltaTable(
            s3.lake_uri(f"silver/{entity}"), storage_options=s3.delta_storage_options()
        )
    except TableNotFoundError:
        return []
    key = RECORD_KEYS[entity]
    return sorted(table.to_pyarrow_table().to_pylist(), key=lambda row: str(row[key]))
