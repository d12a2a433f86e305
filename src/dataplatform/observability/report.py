"""`dataplatform report`: the dashboards' panels, queried from the real Prometheus, on one static
HTML page with inline SVG charts (no script, no CDN: it opens on an air-gapped machine).

Where Grafana runs (compose) it shows the same panels from the same `DASHBOARDS`.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dataplatform.observability.dashboards import DASHBOARDS, Dashboard, Panel

_WIDTH, _HEIGHT, _PAD = 640, 200, 36
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class ReportError(Exception):
    """Prometheus could not answer a panel's query; the message names the panel and why."""


@dataclass(frozen=True)
class Series:
    """One line of a chart: its legend and its (unix time, value) points."""

    name: str
    points: tuple[tuple[float, float], ...]


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's `{{label}}` legend template filled from a series' labels."""
    if not template:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    return _LEGEND.sub(lambda match: labels.get(match.group(1), ""), template)


def query_range(
    client: httpx.Client, panel: Panel, *, start: float, end: float, step_s: float
) -> list[Series]:
    """Run the panel's PromQL over [start, end] against Prometheus's HTTP API.

    Raises:
        ReportError: Prometheus refused the query or did not answer.
    """
    try:
        response = client.get(
            "/api/v1/query_range",
            params={"query": panel.expr, "start": start, "end": end, "step": step_s},
        )
    except httpx.HTTPError as exc:
        raise ReportError(f"{panel.title}: Prometheus did not answer ({exc})") from exc
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise ReportError(f"{panel.title}: {body.get('error', response.status_code)}")
    return [
        Series(
            legend(panel.legend, item["metric"]),
            tuple(
                (float(t), float(v)) for t, v in item["values"] if v not in ("NaN", "+Inf", "-Inf")
            ),
        )
        for item in body["data"]["result"]
    ]


def _svg(series: list[Series]) -> str:
    points = [p for s in series for p in s.points]
    if not points:
        return '<p class="empty">no data</p>'
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    v0, v1 = min(0.0, *(p[1] for p in points)), max(p[1] for p in points)
    span_t, span_v = (t1 - t0) or 1.0, (v1 - v0) or 1.0

    def xy(t: float, v: float) -> str:
        x = _PAD + (t - t0) / span_t * (_WIDTH - 2 * _PAD)
        y = _HEIGHT - _PAD - (v - v0) / span_v * (_HEIGHT - 2 * _PAD)
        return f"{x:.1f},{y:.1f}"

    lines = [
        f'<polyline class="series" fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" '
        f'stroke-width="1.5" points="{" ".join(xy(t, v) for t, v in s.points)}">'
        f"<title>{html.escape(s.name)}</title></polyline>"
        for i, s in enumerate(series)
        if s.points
    ]
    axis = (
        f'<line x1="{_PAD}" y1="{_HEIGHT - _PAD}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT - _PAD}" '
        'stroke="#999"/>'
        f'<text x="2" y="{_PAD}" font-size="10">{v1:.4g}</text>'
        f'<text x="2" y="{_HEIGHT - _PAD}" font-size="10">{v0:.4g}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img">{axis}{"".join(lines)}</svg>'
    )


def render_html(
    results: list[tuple[Dashboard, list[tuple[Panel, list[Series]]]]], *, generated_at: datetime
) -> str:
    """The report page: one section per dashboard, one chart and legend per panel."""
    sections = []
    for spec, panels in results:
        figures = []
        for index, (panel, series) in enumerate(panels):
            items = "".join(
                f'<li style="color:{_COLOURS[i % len(_COLOURS)]}">{html.escape(s.name)}</li>'
                for i, s in enumerate(series)
            )
            figures.append(
                f'<figure class="panel" id="{spec.uid}-{index}" data-dashboard="{spec.uid}" '
                f'data-series="{len(series)}"><figcaption>{html.escape(panel.title)}'
                f" <small>[{html.escape(panel.unit)}]</small></figcaption>{_svg(series)}"
                f"<ul>{items}</ul><code>{html.escape(panel.expr)}</code></figure>"
            )
        sections.append(
            f'<section class="dashboard" data-uid="{spec.uid}"><h2>{html.escape(spec.title)}</h2>'
            f"{''.join(figures)}</section>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Data platform report</title><style>"
        "body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:.5em;"
        "border:1px solid #ddd;padding:.5em;vertical-align:top}code{font-size:9px;display:block;"
        "max-width:640px;overflow-wrap:anywhere}ul{font-size:11px;margin:0;padding-left:1.2em}"
        ".empty{color:#a00}</style></head><body>"
        f"<h1>Data platform report</h1><p>Generated {generated_at.isoformat()}</p>"
        f"{''.join(sections)}</body></html>"
    )


def build_report(
    prometheus_url: str,
    out: Path,
    *,
    range_s: float = 3600.0,
    dashboards: tuple[Dashboard, ...] = DASHBOARDS,
) -> Path:
    """Query every panel over the last `range_s` seconds and write the page to `out`.

    Raises:
        ReportError: A panel's query failed.
    """
    end = time.time()
    start = end - range_s
    step_s = max(range_s / 240, 1.0)
    with httpx.Client(base_url=prometheus_url, timeout=30) as client:
        results = [
            (
                spec,
                [
                    (panel, query_range(client, panel, start=start, end=end, step_s=step_s))
                    for panel in spec.panels
                ],
            )
            for spec in dashboards
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(results, generated_at=datetime.now(UTC)), encoding="utf-8")
    return out
