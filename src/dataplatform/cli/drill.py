"""`dataplatform drill`: disaster-recovery drills on your own native platform, with RPO/RTO."""

from __future__ import annotations

import platform
from typing import Annotated

import typer
from rich.console import Console

drill_app = typer.Typer(
    help="Disaster-recovery drills (destructive: only on a platform of your own).",
    no_args_is_help=True,
)
err = Console(stderr=True, highlight=False)


@drill_app.command("kafka")
def kafka(
    records: Annotated[
        int, typer.Option("--records", min=1, help="Records sent before and after the backup")
    ] = 200,
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=10, help="Longest wait of each step, seconds")
    ] = 900,
    curate: Annotated[
        bool,
        typer.Option("--curate", help="Also run curation and check silver (one row per key)"),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: this deletes the Kafka broker's data")
    ] = False,
) -> None:
    """Lose the Kafka broker's data, recover it from a backup, print RPO/RTO and the checks."""
    from dataplatform.drills import DrillError, kafka_drill
    from dataplatform.settings import get_kafka_settings, get_runtime_settings

    runtime = get_runtime_settings()
    if not yes:
        typer.confirm(
            f"This deletes {runtime.data_dir / 'kafka'} (broker "
            f"{get_kafka_settings().bootstrap_servers}). Continue?",
            abort=True,
        )
    try:
        report = kafka_drill(records=records, timeout_s=timeout_s, curate=curate)
    except DrillError as exc:
        err.print(f"[bold red]drill failed:[/] {exc}")
        raise typer.Exit(code=1) from None
    typer.echo(f"kafka drill on {platform.node()} ({platform.machine()}), data {runtime.data_dir}")
    for line in report.lines():
        typer.echo(line)
