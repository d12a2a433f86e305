"""A real `spark-submit` with compose's Airflow settings registers with the standalone master.

Compose's Airflow tasks submit the jobs to `spark://spark-master:7077`; the jobs' own session
(`build_spark_session`) must not fall back to `local[2]` and override that. Here a Spark
standalone master and worker run natively from the pyspark install, on loopback and on ports of
their own; the Airflow scheduler's resolved environment (compose-go) is mapped onto them, a
driver built with the platform's session code runs a small job, and the master's JSON API must
list the application as completed on the cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyspark
import pytest

from dataplatform.composefiles import resolve
from dataplatform.native.base import port_open, wait_until
from pyspark_jobs.session import spark_jars

BIN = Path(sys.executable).parent
#: The pyspark install is a Spark distribution (its scripts would look for it with whichever
#: `python3` is on PATH).
SPARK_HOME = str(Path(pyspark.__file__).parent)
#: Ports of this test's cluster: below the ephemeral range, away from the platform's.
MASTER_PORT, MASTER_UI_PORT, WORKER_UI_PORT = 27077, 28090, 28091
APP_NAME = "compose-settings-check"


def _java_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in ("PATH", "JAVA_HOME", "HOME") if key in os.environ}
    # Daemons and driver bind loopback only (their web UIs bind every interface otherwise).
    return {
        **env,
        "SPARK_HOME": SPARK_HOME,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master and one worker; yields the master URL."""
    busy = [p for p in (MASTER_PORT, MASTER_UI_PORT, WORKER_UI_PORT) if port_open("127.0.0.1", p)]
    if busy:
        pytest.fail(f"ports {busy} are taken: stop what listens there")
    logs = tmp_path_factory.mktemp("spark-standalone")
    master_url = f"spark://127.0.0.1:{MASTER_PORT}"
    spark_class = str(BIN / "spark-class")
    commands = {
        "master": [
            spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
            "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI_PORT),
        ],
        "worker": [
            spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host",
            "127.0.0.1", "--cores", "1", "--memory", "1g", "--webui-port", str(WORKER_UI_PORT),
            "--work-dir", str(logs / "work"),
        ],
    }  # fmt: skip
    processes = []
    try:
        for name, command in commands.items():
            log = (logs / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_java_env())
            )
            if name == "master":
                master: subprocess.Popen[bytes] = processes[-1]
                started = wait_until(
                    lambda m=master: m.poll() is not None or _master_state() is not None, 90
                )
                assert started and master.poll() is None, (logs / "master.log").read_text()
        assert wait_until(lambda: bool((_master_state() or {}).get("aliveworkers")), 90), (
            logs / "worker.log"
        ).read_text()
        yield master_url
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=60)


def _master_state() -> dict[str, Any] | None:
    try:
        return httpx.get(f"http://127.0.0.1:{MASTER_UI_PORT}/json/", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None


def _compose_airflow_env(master_url: str) -> dict[str, str]:
    """The Airflow scheduler's resolved SPARK_* settings, mapped onto this machine."""
    env = resolve("advanced")["services"]["airflow-scheduler"]["environment"]
    spark = {key: str(value) for key, value in env.items() if key.startswith("SPARK_")}
    compose_master = spark.get("SPARK_MASTER", "")
    assert compose_master.startswith("spark://spark-master:"), f"SPARK_MASTER={compose_master!r}"
    # The cluster's address and the driver's own: compose's service names become loopback.
    return {
        **spark,
        "SPARK_MASTER": master_url,
        "SPARK_DRIVER_HOST": "127.0.0.1",
        "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1",
    }


def test_spark_submit_with_compose_settings_runs_on_cluster(cluster: str, tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            from pyspark_jobs.session import build_spark_session

            spark = build_spark_session("{APP_NAME}")
            print("MASTER", spark.sparkContext.master)
            print("COUNT", spark.range(1000).repartition(2).count())
            spark.stop()
            """
        ),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        **_compose_airflow_env(cluster),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_HOME": SPARK_HOME,
    }
    result = subprocess.run(
        [
            str(BIN / "spark-submit"),
            "--master",
            cluster,
            "--deploy-mode",
            "client",
            # What the DAGs' SparkSubmitOperator passes from the `spark_jars` Variable.
            "--jars",
            ",".join(str(jar) for jar in spark_jars()),
            str(driver),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"MASTER {cluster}" in result.stdout
    assert "COUNT 1000" in result.stdout
    state = _master_state() or {}
    apps = [a for a in state.get("completedapps", []) + state.get("activeapps", [])]
    registered = [a for a in apps if a["name"] == APP_NAME]
    assert registered, f"the driver never registered with {cluster}: {apps}"
    assert registered[0]["cores"] >= 1
