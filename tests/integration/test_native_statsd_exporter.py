"""Airflow's metrics reach Prometheus's format: the native `statsd-exporter` service (started
from its definition, on free ports) receives what Airflow's own StatsD client sends with the
`[metrics]` settings native mode renders into airflow.cfg, and serves every `airflow_*` series
an Orchestration panel reads, labelled by DAG, task and state; the older names that carry the
ids inside the metric name are dropped.

Airflow's client runs in its own virtualenv (.venv-airflow), emitting the events its scheduler
and task runner emit when a DAG run finishes (the same calls, names and tags); the e2e panel
test sees them from real DAG runs. About 15 s.
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dataplatform.native.airflow import get_airflow_settings, render_config
from dataplatform.native.base import Context, wait_until
from dataplatform.native.services import SERVICES
from dataplatform.observability.dashboards import DASHBOARDS
from tests.integration.native_support import clear_settings, free_port
from tests.unit.test_dashboard_metrics import metric_names

#: What Airflow's scheduler and task runner send for a finished DAG run of two tasks.
EMIT = textwrap.dedent(
    """
    import datetime
    from airflow.sdk.observability import stats

    tags = {"dag_id": "probe", "run_type": "manual"}
    for task, state in (("extract", "success"), ("load", "failed")):
        ti = {"dag_id": "probe", "task_id": task}
        stats.incr("ti.finish", tags={**ti, "state": state})
        stats.incr(f"ti.finish.probe.{task}.{state}")
        stats.timing("task.duration", dt=datetime.timedelta(seconds=4), tags=ti)
    stats.timing("dagrun.duration.failed", dt=datetime.timedelta(seconds=9), tags=tags)
    stats.incr("scheduler_heartbeat", 1, 1)
    """
)


@pytest.fixture
def exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The StatsD exporter started from its service definition; yields its metrics URL."""
    port = free_port()
    monkeypatch.setenv("DATAPLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STATSD_EXPORTER_PORT", str(port))
    monkeypatch.setenv("STATSD_EXPORTER_STATSD_PORT", str(free_port(socket.SOCK_DGRAM)))
    clear_settings()
    ctx = Context.load("advanced")
    service = SERVICES["statsd-exporter"]
    assert all(check(ctx) is None for check in service.preflight)
    log_path = tmp_path / "statsd-exporter.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(service.command(ctx), stdout=log, stderr=subprocess.STDOUT)
        try:
            assert wait_until(lambda: service.probe(ctx), timeout_s=30), log_path.read_text()
            yield f"http://127.0.0.1:{port}/metrics"
        finally:
            process.terminate()
            process.wait(timeout=30)
            monkeypatch.undo()
            clear_settings()


def _airflow_metrics_environment(home: Path) -> dict[str, str]:
    """`[metrics]` of the airflow.cfg native mode writes, as Airflow's own variables."""
    from dataplatform.settings import get_postgres_settings

    config = render_config(home, get_airflow_settings(), get_postgres_settings())
    return {f"AIRFLOW__METRICS__{key.upper()}": value for key, value in config["metrics"].items()}


def test_airflow_statsd_metrics_become_every_orchestration_panel_series(
    exporter: str, tmp_path: Path
) -> None:
    airflow = get_airflow_settings()
    environment = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "PATH": "/usr/bin:/bin",
        **_airflow_metrics_environment(tmp_path / "airflow"),
    }
    result = subprocess.run(
        [str(airflow.airflow_bin.parent / "python"), "-c", EMIT],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    def served() -> str:
        return httpx.get(exporter, timeout=5).text

    assert wait_until(lambda: "airflow_scheduler_heartbeat_total" in served(), timeout_s=20)
    text = served()
    names = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    panels = {
        name
        for spec in DASHBOARDS
        for panel in spec.panels
        for name in metric_names(panel.expr)
        if name.startswith("airflow_")
    }
    assert panels, "no dashboard panel reads Airflow's metrics"
    assert panels <= names, f"panels read series the exporter does not serve: {panels - names}"
    assert 'airflow_ti_finish_total{dag_id="probe",state="failed",task_id="load"} 1' in text
    assert (
        'airflow_dagrun_duration_seconds_count{dag_id="probe",run_type="manual",state="failed"} 1'
        in text
    )
    assert 'airflow_task_duration_seconds_sum{dag_id="probe",task_id="extract"} 4' in text
    # The names with the ids inside are dropped: one series family per event.
    assert not [name for name in names if name.startswith("airflow_ti_finish_probe")]
