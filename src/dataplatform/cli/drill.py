"""`dataplatform drill`: disaster-recovery drills on the native platform, with RPO/RTO."""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

drill_app = typer.Typer(
    help="Disaster-recovery drills with measured RPO/RTO (kafka: destructive, own platform only).",
    no_args_is_help=True,
)
err = Console(stderr=True, highlight=False)


def _print_report(title: str, drill: Callable[[], Any]) -> None:
    """Run a drill; print its title and report lines, or its failure (exit 1)."""
    from dataplatform.drills import DrillError

    try:
        report = drill()
    except DrillError as exc:
        err.print(f"[bold red]drill failed:[/] {exc}")
        raise typer.Exit(code=1) from None
    typer.echo(title)
    for line in report.lines():
        typer.echo(line)


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
    from dataplatform.drills import kafka_drill
    from dataplatform.settings import get_kafka_settings, get_runtime_settings

    runtime = get_runtime_settings()
    if not yes:
        typer.confirm(
            f"This deletes {runtime.data_dir / 'kafka'} (broker "
            f"{get_kafka_settings().bootstrap_servers}). Continue?",
            abort=True,
        )
    _print_report(
        f"kafka drill on {platform.node()} ({platform.machine()}), data {runtime.data_dir}",
        lambda: kafka_drill(records=records, timeout_s=timeout_s, curate=curate),
    )


@drill_app.command("postgres")
def postgres(
    marks: Annotated[
        int, typer.Option("--marks", min=1, help="Marker rows written before and after the backup")
    ] = 100,
    backup_date: Annotated[
        str | None,
        typer.Option("--date", help="Day of the drill's backup folder, YYYY-MM-DD (default today)"),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the restored databases (drill_<run>_<db>)")
    ] = False,
) -> None:
    """Back up the ingest and Airflow databases, restore them into new ones, verify; RPO/RTO.

    Safe on a live platform: it restores into new databases and drops them afterwards.
    """
    from datetime import date

    from dataplatform.dr_drills import postgres_drill
    from dataplatform.settings import get_postgres_settings

    try:
        day = date.fromisoformat(backup_date) if backup_date else None
    except ValueError:
        err.print(f"[bold red]error:[/] --date must be YYYY-MM-DD, got {backup_date!r}")
        raise typer.Exit(code=1) from None
    pg = get_postgres_settings()
    _print_report(
        f"postgres drill on {platform.node()} ({platform.machine()}), server {pg.host}:{pg.port}",
        lambda: postgres_drill(marks=marks, backup_date=day, keep=keep),
    )


@drill_app.command("delta")
def delta(
    rows: Annotated[int, typer.Option("--rows", min=2, help="Rows of each good write")] = 1000,
    lake_prefix: Annotated[
        str | None,
        typer.Option(help="Lake prefix of the drill's table (default drills/delta/<run>)"),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the drill's table")] = False,
) -> None:
    """Damage a Delta table of the drill's own, time-travel and restore it, verify; RTO.

    Safe on a live platform: the table lives under its own lake prefix, deleted afterwards.
    """
    from dataplatform.dr_drills import delta_drill

    _print_report(
        f"delta drill on {platform.node()} ({platform.machine()})",
        lambda: delta_drill(rows=rows, lake_prefix=lake_prefix, keep=keep),
    )
