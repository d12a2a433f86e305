"""Each image's Python environment, rebuilt from exactly what its Dockerfile copies, runs every
command compose gives its containers.

tests/images.py replays each Dockerfile's virtualenv steps natively (the same `COPY`s, the same
`pip install` lines and constraints), then every container of every track that runs the image has
its resolved command (docker-compose.yml through compose's own loader) run with `--help`, and the
modules that command loads once it really starts are imported in that environment. A file the
Dockerfile forgets to copy, an extra it forgets to install or a command that no longer parses
fails here, without a Docker engine. No platform service is needed.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dataplatform import composefiles
from dataplatform.composefiles import ROOT
from tests.images import ImageEnv, build_image_venv, container_argv, container_env

DOCKERFILES = {
    "dataplatform/platform": ROOT / "fastapi_app" / "Dockerfile",
    "dataplatform/spark": ROOT / "pyspark_jobs" / "Dockerfile",
    "dataplatform/airflow": ROOT / "docker" / "airflow" / "Dockerfile",
}
#: What a `dataplatform` command loads only once it runs for real (`--help` stops before): the
#: app the ingestor serves, the job module `run <job>` becomes, the exporter's metrics server.
RUNTIME_MODULES = {
    ("run", "ingestor"): ["fastapi_app.app.main", "uvicorn", "uvloop", "httptools"],
    ("run", "exporter"): ["dataplatform.exporter", "prometheus_client"],
    ("run", "landing"): ["pyspark_jobs.landing", "pyspark", "delta"],
    ("init", "postgres"): ["dataplatform.native.services", "psycopg"],
    ("init", "s3"): ["dataplatform.native.services", "boto3"],
    ("init", "kafka"): ["dataplatform.native.services", "confluent_kafka"],
}
#: The Spark jobs' modules behind `dataplatform run <job>`: their own `--help` imports them.
JOB_MODULES = {("run", "landing"): "pyspark_jobs.landing"}


@cache
def _services() -> dict[str, dict[str, Any]]:
    """Every service of every track (the advanced profile holds them all), resolved."""
    services: dict[str, dict[str, Any]] = {}
    for track in ("starter", "intermediate", "advanced"):
        services.update(composefiles.resolve(track)["services"])
    return services


def _image_of(spec: dict[str, Any]) -> str:
    return str(spec.get("image", "")).partition(":")[0]


PROJECT_SERVICES = sorted(n for n, s in _services().items() if _image_of(s) in DOCKERFILES)


class Images(dict[str, ImageEnv]):
    """Each image's virtualenv stage, replayed the first time a test asks for the image."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.factory = factory

    def __missing__(self, name: str) -> ImageEnv:
        root = self.factory.mktemp(name.replace("/", "-"))
        self[name] = build_image_venv(DOCKERFILES[name], root)
        return self[name]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    """The images' Python environments (minutes each: pip installs, from pip's cache)."""
    return Images(tmp_path_factory)


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_project_services_found() -> None:
    assert {_image_of(_services()[n]) for n in PROJECT_SERVICES} == set(DOCKERFILES)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_venv_requirements_consistent(images: dict[str, ImageEnv], image: str) -> None:
    built = images[image]
    assert built.venvs, f"{DOCKERFILES[image]} creates no virtualenv"
    pip = built.host(built.venvs[-1]) / "bin" / "pip"
    result = _run([str(pip), "check"], {"PATH": "/usr/bin:/bin"}, built.root)
    problems = result.stdout.strip().splitlines() if result.returncode else []
    # The Spark image's PySpark is its Spark's own (a .pth file), not a pip distribution.
    if image == "dataplatform/spark":
        problems = [p for p in problems if not re.search(r"requires pyspark\b", p)]
    assert not problems, problems


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_container_command_answers_help(
    images: dict[str, ImageEnv], service: str, tmp_path: Path
) -> None:
    spec = _services()[service]
    image = images[_image_of(spec)]
    env = container_env(image, spec, tmp_path)
    programs = container_argv(image, spec, env)
    assert programs, f"{service}: no command"
    for argv in programs:
        result = _run([*argv, "--help"], env, image.host(image.workdir))
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{service}: {argv} --help failed:\n{output[-3000:]}"
        assert re.search(r"usage", output, re.IGNORECASE), f"{service}: {argv}: no usage"


def _dataplatform_commands() -> dict[str, tuple[str, str]]:
    commands = {}
    for name in PROJECT_SERVICES:
        command = [str(part) for part in _services()[name].get("command") or []]
        if command[:1] == ["dataplatform"]:
            commands[name] = (command[1], command[2])
    return commands


def test_runtime_modules_cover_every_dataplatform_command() -> None:
    assert set(_dataplatform_commands().values()) <= set(RUNTIME_MODULES)


@pytest.mark.parametrize("service", sorted(_dataplatform_commands()))
def test_container_command_imports_what_it_runs(
    images: dict[str, ImageEnv], service: str, tmp_path: Path
) -> None:
    spec = _services()[service]
    image = images[_image_of(spec)]
    env = container_env(image, spec, tmp_path)
    python = str(image.host(image.venvs[-1]) / "bin" / "python")
    command = _dataplatform_commands()[service]
    imports = "; ".join(f"import {module}" for module in RUNTIME_MODULES[command])
    result = _run([python, "-c", imports], env, image.host(image.workdir))
    assert result.returncode == 0, f"{service}: {imports}:\n{result.stderr[-3000:]}"
    if command in JOB_MODULES:
        result = _run([python, "-m", JOB_MODULES[command], "--help"], env, tmp_path)
        assert result.returncode == 0, f"{service}: {JOB_MODULES[command]}:\n{result.stderr}"


def _dag_jobs() -> list[str]:
    """The job files the DAGs hand to spark-submit (`job="curation.py"`)."""
    text = "".join(path.read_text() for path in (ROOT / "airflow_dags").glob("*.py"))
    return sorted(set(re.findall(r'job="(\w+\.py)"', text)))


def test_dag_jobs_found() -> None:
    assert {"curation.py", "quality.py", "maintenance.py"} <= set(_dag_jobs())


@pytest.mark.parametrize("job", _dag_jobs())
def test_dag_job_answers_help_in_airflow_image(
    images: dict[str, ImageEnv], job: str, tmp_path: Path
) -> None:
    """spark-submit runs the job file the Airflow variable names with the image's driver Python."""
    spec = _services()["airflow-scheduler"]
    image = images["dataplatform/airflow"]
    env = container_env(image, spec, tmp_path)
    script = Path(env["AIRFLOW_VAR_PYSPARK_JOBS_DIR"]) / job
    assert script.exists(), f"{script} is not in the image (AIRFLOW_VAR_PYSPARK_JOBS_DIR)"
    result = _run([env["PYSPARK_DRIVER_PYTHON"], str(script), "--help"], env, tmp_path)
    assert result.returncode == 0, f"{job} --help:\n{result.stderr[-3000:]}"
