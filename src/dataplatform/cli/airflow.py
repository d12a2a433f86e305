"""`dataplatform airflow ...`: Airflow's own CLI, run in its virtualenv against this platform.

Everything after `airflow` is passed on unchanged (`dataplatform airflow dags list`,
`dataplatform airflow dags trigger curation`, `dataplatform airflow --help`), with
`AIRFLOW_HOME` and the rest of the environment the native services run with, so nobody has to
activate `.venv-airflow` or know where `airflow.cfg` lives.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from dataplatform.native.airflow import get_airflow_settings, process_environment, write_config
from dataplatform.native.services import Context, PlatformError

#: Registered with `app.command("airflow", **AIRFLOW_COMMAND)`: every argument and option,
#: `--help` included, belongs to Airflow's CLI.
AIRFLOW_COMMAND: dict[str, Any] = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
    "add_help_option": False,
}


def airflow_passthrough(ctx: typer.Context) -> None:
    """Run Airflow's CLI (in .venv-airflow) against this platform's Airflow."""
    settings = get_airflow_settings()
    runtime_ctx = Context.load()
    home = runtime_ctx.service_dir("airflow")
    if not settings.airflow_bin.exists():
        typer.echo(
            f"error: {settings.airflow_bin} is missing: run "
            "`bash src/dataplatform/native/airflow_install.sh`",
            err=True,
        )
        raise typer.Exit(code=1)
    try:
        # The same airflow.cfg the services use, so the CLI works before the first `up` too.
        write_config(home, settings, runtime_ctx.postgres)
    except PlatformError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    env = {**os.environ, **process_environment(home, settings)}
    binary = str(settings.airflow_bin)
    os.execve(binary, [binary, *ctx.args], env)  # noqa: S606 (replaces this process on purpose)
