"""Dashboards as code: the provisioned JSON is what the Python definitions generate, every
panel's PromQL parses (promtool), nothing pads missing data, and the report page shows every
panel."""

from __future__ import annotations

import html
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dataplatform.native.services import PROMTOOL
from dataplatform.observability.dashboards import (
    DASHBOARDS,
    DASHBOARDS_DIR,
    DATASOURCE_UID,
    dashboard_json,
)
from dataplatform.observability.report import Series, legend, render_html

ROOT = Path(__file__).resolve().parents[2]
PANELS = [(spec.uid, panel) for spec in DASHBOARDS for panel in spec.panels]


def test_dashboards_cover_the_five_areas_with_fixed_uids() -> None:
    assert [spec.title for spec in DASHBOARDS] == [
        "Platform health",
        "Ingestion",
        "Streaming",
        "Lake",
        "Orchestration",
    ]
    assert len({spec.uid for spec in DASHBOARDS}) == len(DASHBOARDS)


@pytest.mark.parametrize("spec", DASHBOARDS, ids=lambda spec: spec.uid)
def test_provisioned_json_matches_definitions(spec: object) -> None:
    path = ROOT / DASHBOARDS_DIR / f"{spec.uid}.json"  # type: ignore[attr-defined]
    assert path.is_file(), "run `dataplatform dashboards write`"
    assert path.read_text(encoding="utf-8") == dashboard_json(spec), (  # type: ignore[arg-type]
        "stale: run `dataplatform dashboards write`"
    )
    model = json.loads(path.read_text(encoding="utf-8"))
    assert model["uid"] == spec.uid  # type: ignore[attr-defined]
    for panel in model["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
        assert [t["expr"] for t in panel["targets"]]


def test_panel_datasource_is_the_provisioned_one() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "observability/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    uids = {source["uid"] for source in provisioned["datasources"]}
    assert DATASOURCE_UID in uids
    assert DATASOURCE_UID.islower()


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=[p.title for _, p in PANELS])
def test_panel_query_has_no_padding(uid: str, panel: object) -> None:
    expr = panel.expr.replace(" ", "")  # type: ignore[attr-defined]
    assert "vector(" not in expr and "absent(" not in expr, f"{uid}: padded query {expr}"


def test_every_panel_query_parses(tmp_path: Path) -> None:
    # promtool parses each expression as it checks a rules file: one recording rule per panel.
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:check:{index}", "expr": panel.expr}
                    for index, (_, panel) in enumerate(PANELS)
                ],
            }
        ]
    }
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(PANELS)} rules found" in result.stdout


def test_promtool_refuses_a_broken_query(tmp_path: Path) -> None:
    path = tmp_path / "broken.rules.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "a:b", "expr": "sum(("}]}]}),
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


def test_legend_fills_labels_like_grafana() -> None:
    assert legend("{{entity}} {{ outcome }}", {"entity": "tx", "outcome": "ok"}) == "tx ok"
    assert legend("", {"job": "ingestor"}) == "job=ingestor"


def test_report_page_has_every_panel_with_its_series() -> None:
    results = [
        (spec, [(panel, [Series("a", ((0.0, 1.0), (60.0, 2.0)))]) for panel in spec.panels])
        for spec in DASHBOARDS
    ]
    page = render_html(results, generated_at=datetime(2026, 1, 1, tzinfo=UTC))
    for spec in DASHBOARDS:
        for index, panel in enumerate(spec.panels):
            assert f'id="{spec.uid}-{index}"' in page
            assert html.escape(panel.title) in page
    assert page.count("<polyline") == len(PANELS)
    # Nothing to fetch: no script, stylesheet, image or font from anywhere.
    assert not any(tag in page for tag in ("<script", "<link", "src=", "url("))
