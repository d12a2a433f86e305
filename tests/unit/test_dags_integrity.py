"""DAG integrity: every DAG file loads in Airflow's own virtualenv and follows the house rules.

The DAGs run in `.venv-airflow`, not in the venv running pytest, so the DAG folder is loaded by
a subprocess of Airflow's interpreter with `DagBag`, with every socket connection refused: a
DAG file that touches the network (a Variable, a connection, an HTTP call) at import time
shows up as an import error. The subprocess reports what it found as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dataplatform.products import DAG_ENTITIES
from dataplatform.settings import project_root
from dataplatform.spark_settings import BATCH_JOB_JAVA_OPTIONS

DAGS_FOLDER = project_root() / "airflow_dags"
AIRFLOW_PYTHON = project_root() / ".venv-airflow" / "bin" / "python"
DAG_FILES = sorted(path.name for path in DAGS_FOLDER.glob("*.py"))
REQUIRED_TAG = "dataplatform"
#: Modules that must not be imported by parsing a DAG: the platform's heavy code runs in tasks.
HEAVY_MODULES = ("pyspark", "deltalake", "boto3", "psycopg", "pandas", "dataplatform")

_LOADER = textwrap.dedent(
    """
    import json, socket, sys
    from pathlib import Path

    def refuse(*args, **kwargs):
        raise OSError("network I/O while importing a DAG file")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from airflow.dag_processing.dagbag import DagBag

    def weight(task):
        # The weight a task has in its pool's queue (Airflow's weight rules).
        rule = str(getattr(task.weight_rule, "value", task.weight_rule)).lower()
        if "absolute" in rule:
            return task.priority_weight
        others = task.get_flat_relatives(upstream="upstream" in rule)
        return task.priority_weight + sum(other.priority_weight for other in others)

    folder = sys.argv[1]
    heavy = sys.argv[2].split(",")
    sys.path.insert(0, folder)  # the DAG processor puts the DAG folder on sys.path too
    bag = DagBag(dag_folder=folder)
    report = {
        "import_errors": {Path(path).name: error for path, error in bag.import_errors.items()},
        "heavy_modules": sorted(name for name in heavy if name in sys.modules),
        "dags": {
            dag_id: {
                "file": Path(dag.fileloc).name,
                "tags": sorted(dag.tags),
                "catchup": dag.catchup,
                "doc_md": dag.doc_md or "",
                "owner": dag.owner,
                "dag_failure_callback": bool(dag.on_failure_callback),
                "tasks": {
                    task.task_id: {
                        "retries": task.retries,
                        "owner": task.owner,
                        "failure_callback": bool(task.on_failure_callback),
                        "application_args": getattr(task, "application_args", None),
                        "pool": task.pool,
                        "priority_weight": weight(task),
                        "conf": getattr(task, "conf", None),
                    }
                    for task in dag.tasks
                },
            }
            for dag_id, dag in bag.dags.items()
        },
    }
    print(json.dumps(report))
    """
)


def load_dag_folder(folder: Path, airflow_home: Path) -> dict[str, Any]:
    """Load `folder` with Airflow's `DagBag` in `.venv-airflow`, sockets refused."""
    env = {
        **os.environ,
        # A throwaway home: loading DAGs needs a config, never the platform's metadata DB.
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW_CONFIG": str(airflow_home / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A metadata DB nobody listens on: a DAG reading a Variable or a connection at import
        # time fails to load instead of quietly reading a local SQLite file.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody@127.0.0.1:9/none",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
    }
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", _LOADER, str(folder), ",".join(HEAVY_MODULES)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dag_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not AIRFLOW_PYTHON.exists():
        pytest.fail(f"{AIRFLOW_PYTHON} is missing: run src/dataplatform/native/airflow_install.sh")
    return load_dag_folder(DAGS_FOLDER, tmp_path_factory.mktemp("airflow-home"))


def _dags_of(report: dict[str, Any], file_name: str) -> dict[str, Any]:
    return {dag_id: dag for dag_id, dag in report["dags"].items() if dag["file"] == file_name}


def test_dag_folder_has_the_platform_dags() -> None:
    assert DAG_FILES == [
        "catalog_ingestion.py",
        "curation.py",
        "data_quality.py",
        "lake_maintenance.py",
        "platform_backup.py",
    ]


@pytest.mark.parametrize("file_name", DAG_FILES)
def test_dag_file_imports_without_errors_or_network(
    dag_report: dict[str, Any], file_name: str
) -> None:
    assert dag_report["import_errors"].get(file_name) is None, dag_report["import_errors"][
        file_name
    ]


@pytest.mark.parametrize("file_name", DAG_FILES)
def test_dag_file_defines_one_dag_named_like_the_file(
    dag_report: dict[str, Any], file_name: str
) -> None:
    assert list(_dags_of(dag_report, file_name)) == [Path(file_name).stem]


@pytest.mark.parametrize("file_name", DAG_FILES)
def test_dag_follows_the_rules(dag_report: dict[str, Any], file_name: str) -> None:
    for dag_id, dag in _dags_of(dag_report, file_name).items():
        assert REQUIRED_TAG in dag["tags"] and len(dag["tags"]) >= 2, dag_id
        assert dag["catchup"] is False, f"{dag_id}: catchup must be False unless backfilling"
        assert dag["doc_md"].lstrip().startswith(f"# {dag_id}"), f"{dag_id}: doc_md=__doc__"
        assert dag["owner"] == "data-platform", dag_id
        assert dag["dag_failure_callback"], f"{dag_id}: no DAG failure callback"
        assert dag["tasks"], f"{dag_id} has no task"
        for task_id, task in dag["tasks"].items():
            assert task["retries"] >= 2, f"{dag_id}.{task_id}: retries {task['retries']}"
            assert task["owner"] == "data-platform", f"{dag_id}.{task_id}"
            assert task["failure_callback"], f"{dag_id}.{task_id}: no failure callback"


def test_dag_files_import_no_heavy_module(dag_report: dict[str, Any]) -> None:
    assert dag_report["heavy_modules"] == []


@pytest.mark.parametrize(
    "top_level_io",
    [
        pytest.param('socket.create_connection(("127.0.0.1", 5432), timeout=1)', id="socket"),
        pytest.param('Variable.get("pyspark_jobs_dir")', id="variable"),
    ],
)
def test_io_at_import_time_is_reported(tmp_path: Path, top_level_io: str) -> None:
    """The guards work: a DAG file doing I/O at import time fails to load."""
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "chatty.py").write_text(
        "import socket\n"
        "from airflow.sdk import Variable, dag\n\n"
        f"{top_level_io}\n\n\n"
        "@dag(schedule=None)\n"
        "def chatty():\n"
        "    pass\n\n\n"
        "chatty()\n"
    )
    report = load_dag_folder(folder, tmp_path / "home")
    assert "chatty.py" in report["import_errors"]
    assert report["dags"] == {}


def test_curation_dag_curates_every_entity_in_one_spark_job(dag_report: dict[str, Any]) -> None:
    # One JVM per run, whatever the number of entities (issue 12: a session per entity cost
    # most of a run's wall time).
    [dag] = _dags_of(dag_report, "curation.py").values()
    # Then the claim notes are joined to the curated claims (no Spark: delta-rs).
    assert list(dag["tasks"]) == ["curate", "join_claim_notes"]
    args = dag["tasks"]["curate"]["application_args"]
    entities = [args[i + 1] for i, arg in enumerate(args) if arg == "--entity"]
    assert entities == list(DAG_ENTITIES)
    assert args[args.index("--run-id") + 1] == "{{ run_id }}"


def test_curation_goes_first_among_the_spark_pool_tasks(dag_report: dict[str, Any]) -> None:
    # A curation run queued behind a night's maintenance jobs would wait minutes for the
    # one-slot pool: fresh data goes first.
    weights = {
        f"{dag_id}.{task_id}": task["priority_weight"]
        for dag_id, dag in dag_report["dags"].items()
        for task_id, task in dag["tasks"].items()
        if task["pool"] == "spark"
    }
    others = {name: weight for name, weight in weights.items() if name != "curation.curate"}
    assert {"data_quality", "lake_maintenance"} <= {name.split(".")[0] for name in others}
    assert weights["curation.curate"] > max(others.values()), weights


def test_spark_tasks_start_their_driver_with_the_batch_jobs_java_options(
    dag_report: dict[str, Any],
) -> None:
    confs = {
        f"{dag_id}.{task_id}": task["conf"]
        for dag_id, dag in dag_report["dags"].items()
        for task_id, task in dag["tasks"].items()
        if task["pool"] == "spark"
    }
    assert confs
    expected = {"spark.driver.extraJavaOptions": BATCH_JOB_JAVA_OPTIONS}
    assert all(conf == expected for conf in confs.values()), confs
