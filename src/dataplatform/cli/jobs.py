"""The Spark jobs as CLI commands: `dataplatform run landing` and `dataplatform run curation`.

Each command replaces this process with `python -m pyspark_jobs.<job>` (same pid, so signals and
the exit code are the job's own; PySpark starts the JVM with the Maven-resolved jars); the same
jobs run under `spark-submit` with `pyspark_jobs.launch.spark_submit_argv`.
The native runtime runs `dataplatform run landing` as a managed service and probes it with
`landing_healthy()`: the heartbeat file the job rewrites after every micro-batch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from dataplatform.lake import heartbeat_healthy

EntityOption = Annotated[
    list[str] | None,
    typer.Option("--entity", help="<domain>/<entity>, repeatable (default: every entity)"),
]
PrefixOption = Annotated[
    str | None,
    typer.Option(help="Folder in the bucket holding the tables (default LAKEHOUSE_LAKE_PREFIX)"),
]


def _exec_job(module: str, argv: list[str]) -> NoReturn:
    """Become `python -m <module> <argv>`: the job logs its own progress and owns the process."""
    command = [sys.executable, "-m", module, *argv]
    os.execv(command[0], command)  # noqa: S606 (replaces this process on purpose)


def _entities(entity: list[str] | None) -> list[str]:
    return [arg for value in entity or [] for arg in ("--entity", value)]


def landing(
    entity: EntityOption = None,
    available_now: Annotated[
        bool, typer.Option("--available-now", help="Land what is in the topics, then stop")
    ] = False,
    lake_prefix: PrefixOption = None,
    heartbeat_path: Annotated[
        Path | None, typer.Option(help="Default: <data dir>/run/landing/heartbeat.json")
    ] = None,
) -> None:
    """Streaming landing: Kafka -> bronze Delta (exactly once), bad records -> quarantine."""
    argv = _entities(entity)
    if available_now:
        argv.append("--available-now")
    if lake_prefix is not None:
        argv += ["--lake-prefix", lake_prefix]
    if heartbeat_path is not None:
        argv += ["--heartbeat-path", str(heartbeat_path)]
    _exec_job("pyspark_jobs.landing", argv)


def curation(
    entity: EntityOption = None,
    run_id: Annotated[
        str | None, typer.Option(help="Recorded on rows and results (default manual-<time>)")
    ] = None,
    lake_prefix: PrefixOption = None,
    from_bronze_version: Annotated[
        int | None, typer.Option(help="Reprocess bronze from this version")
    ] = None,
) -> None:
    """Curation: new bronze versions -> silver (MERGE) -> gold, with expectations."""
    argv = _entities(entity)
    if run_id is not None:
        argv += ["--run-id", run_id]
    if lake_prefix is not None:
        argv += ["--lake-prefix", lake_prefix]
    if from_bronze_version is not None:
        argv += ["--from-bronze-version", str(from_bronze_version)]
    _exec_job("pyspark_jobs.curation", argv)


def landing_healthy() -> bool:
    """The `landing` service's readiness probe: a fresh `running` heartbeat."""
    return heartbeat_healthy()
