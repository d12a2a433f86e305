"""`dataplatform dashboards write` and `dataplatform report`: the dashboards as code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataplatform.settings import get_prometheus_settings, project_root

dashboards_app = typer.Typer(help="Grafana dashboards defined in Python.", no_args_is_help=True)


@dashboards_app.command("write")
def write(
    target: Annotated[
        Path | None, typer.Option(help="Default: observability/grafana/dashboards")
    ] = None,
) -> None:
    """Write the provisioned Grafana JSON (one file per dashboard, fixed uids)."""
    from dataplatform.observability.dashboards import DASHBOARDS_DIR, write_dashboards

    for path in write_dashboards(target or project_root() / DASHBOARDS_DIR):
        typer.echo(str(path))


def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write")] = Path("data/report.html"),
    prometheus_url: Annotated[
        str | None, typer.Option(help="Default: the native Prometheus (PROMETHEUS_HOST/PORT)")
    ] = None,
    minutes: Annotated[float, typer.Option(help="How far back the charts go")] = 60.0,
) -> None:
    """Render every dashboard panel from the real Prometheus into one static HTML page."""
    from dataplatform.observability.report import ReportError, build_report

    try:
        path = build_report(
            prometheus_url or get_prometheus_settings().base_url, out, range_s=minutes * 60
        )
    except ReportError as exc:
        typer.echo(f"report failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(str(path))
