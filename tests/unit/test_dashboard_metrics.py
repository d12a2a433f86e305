"""Every metric a dashboard panel or an SLO rule reads is one the platform's code exports (or a
recording rule, or Prometheus's own `up`): a renamed metric fails here, in seconds, instead of
leaving a panel empty on the real platform."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import dataplatform.exporter.lake
import fastapi_app.app.core.telemetry
import pyspark_jobs.landing_metrics
from dataplatform.lake import Lake
from dataplatform.observability.dashboards import DASHBOARDS, Panel
from dataplatform.observability.delta_metrics import DeltaTableCollector

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "observability" / "rules" / "slo.rules.yml"
KAFKA_JMX = ROOT / "observability" / "kafka-jmx.yml"
STATSD_MAPPING = ROOT / "observability" / "statsd-mapping.yml"
#: The modules whose prometheus-client metrics Prometheus scrapes (imported for their metrics).
EXPORTING_MODULES = (
    fastapi_app.app.core.telemetry,
    dataplatform.exporter.lake,
    pyspark_jobs.landing_metrics,
)
#: PromQL words that are not metric names.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "or", "and"}
_KEYWORDS |= {"unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric (series) names a PromQL expression reads."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    names = set(re.findall(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text))
    functions = {name for name in names if re.search(rf"(?<![\w:]){name}\s*\(", text)}
    return names - functions - _KEYWORDS


def _rules() -> list[dict[str, str]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _jmx_exported(name: str) -> bool:
    """Whether a name is one the Kafka broker's JMX exporter agent makes from its rules
    (tests/integration/test_native_kafka_jmx.py checks the real agent serves them)."""
    rules = yaml.safe_load(KAFKA_JMX.read_text(encoding="utf-8"))["rules"]
    return any(
        re.fullmatch(re.sub(r"\\\$\d+", r"[a-z0-9_]+", re.escape(rule["name"])), name)
        for rule in rules
    )


def _statsd_exported() -> set[str]:
    """The series the StatsD exporter makes of Airflow's metrics by its mapping (timers are
    histograms); tests/integration/test_native_statsd_exporter.py checks the real one."""
    mapping = yaml.safe_load(STATSD_MAPPING.read_text(encoding="utf-8"))
    names = {rule["name"] for rule in mapping["mappings"] if rule.get("action") != "drop"}
    return names | {f"{name}_{suffix}" for name in names for suffix in ("bucket", "count", "sum")}


def _exported() -> set[str]:
    names = {"up"} | {rule["record"] for rule in _rules() if "record" in rule}
    names |= _statsd_exported()
    # The lake exporter registers its Delta table collector when it starts, not on import.
    delta = DeltaTableCollector(Lake.load(), small_file_bytes=1, tables=[])
    for family in [*REGISTRY.collect(), *delta.collect()]:
        names |= {family.name} | {
            family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum")
        }
    return names


def test_metric_names_of_promql_expressions() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, entity) (rate(a_bucket{table="x"}[5m])) '
        "or sum by (le) (rate(b:c_bucket[1h]))) - time() + up"
    )

    assert metric_names(expr) == {"a_bucket", "b:c_bucket", "up"}


@pytest.mark.parametrize(
    "panel",
    [panel for spec in DASHBOARDS for panel in spec.panels],
    ids=lambda panel: panel.title,
)
def test_panel_query_reads_exported_metrics(panel: Panel) -> None:
    missing = {name for name in metric_names(panel.expr) - _exported() if not _jmx_exported(name)}

    assert not missing, f"no code exports {sorted(missing)}"


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule.get("record") or rule["alert"])
def test_rule_reads_exported_metrics(rule: dict[str, str]) -> None:
    missing = metric_names(rule["expr"]) - _exported()

    assert not missing, f"no code exports {sorted(missing)}"


def test_jmx_exported_names_follow_the_agent_rules() -> None:
    assert _jmx_exported("kafka_server_brokertopicmetrics_messagesin_total")
    assert _jmx_exported("kafka_server_replicamanager_underreplicatedpartitions")
    assert not _jmx_exported("kafka_server_brokertopicmetrics_messagesin")
    assert not _jmx_exported("kafka_network_requestmetrics_requests_total")
