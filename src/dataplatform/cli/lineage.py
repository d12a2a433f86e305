"""`dataplatform lineage TABLE`: where a lake table's data comes from and where it goes.

Reads the jobs' OpenLineage events from the lake's `_lineage/openlineage_events` Delta table
(delta-rs, no JVM) and prints the table's upstream and downstream graph with the last run of
each job.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
from rich.console import Console

console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True)


def lineage(
    table: Annotated[
        str,
        typer.Argument(
            help="A lake table, <layer>/<domain>/<entity> (e.g. gold/finance/"
            "daily_account_totals), or a dataset key such as kafka://host:port/<topic>"
        ),
    ],
    lake_prefix: Annotated[
        str | None,
        typer.Option(
            help="Folder in the bucket holding the tables (default LAKEHOUSE_LAKE_PREFIX)"
        ),
    ] = None,
    direction: Annotated[str, typer.Option(help="upstream, downstream or both")] = "both",
    as_json: Annotated[bool, typer.Option("--json", help="Print the trees as JSON")] = False,
) -> None:
    """Print the upstream and downstream lineage of TABLE with the last run of each job."""
    from dataplatform.lake import Lake
    from dataplatform.lineage import (
        build_graph,
        downstream,
        read_events,
        render_tree,
        table_dataset,
        upstream,
    )

    if direction not in ("upstream", "downstream", "both"):
        err.print("[bold red]error:[/] --direction must be upstream, downstream or both")
        raise typer.Exit(code=2)
    lake = Lake.load(prefix=lake_prefix)
    key = table if "://" in table else table_dataset(lake, table).key
    graph = build_graph(read_events(lake))
    if not any(key in node.inputs or key in node.outputs for node in graph.values()):
        err.print(f"[bold red]error:[/] no lineage event names {key}")
        raise typer.Exit(code=1)
    trees: dict[str, object] = {}
    sides: list[tuple[str, Literal["inputs", "outputs"]]] = []
    if direction in ("upstream", "both"):
        trees["upstream"] = upstream(graph, key)
        sides.append(("upstream", "inputs"))
    if direction in ("downstream", "both"):
        trees["downstream"] = downstream(graph, key)
        sides.append(("downstream", "outputs"))
    if as_json:
        console.print_json(json.dumps(trees))
        return
    for name, walk in sides:
        console.print(f"[bold]{name}[/]")
        for line in render_tree(trees[name], direction=walk):  # type: ignore[arg-type]
            console.print(line, markup=False)
