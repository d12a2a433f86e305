"""SLO rules: `promtool check rules`, `promtool test rules` firing every alert, and the
annotations every alert must carry (summary, description, remediation, dashboard, runbook)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataplatform.native.services import PROMTOOL

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "observability" / "rules" / "slo.rules.yml"
CASES = ROOT / "observability" / "rules" / "slo.test.yml"
ANNOTATIONS = {"summary", "description", "remediation", "dashboard", "runbook"}
#: The seed's SLOs, each guarded by at least one alert.
SLOS = {"ingest-latency", "consumer-lag", "job-success", "rejected-records", "api-availability"}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL.exists(), f"{PROMTOOL} missing: ./quick_start.sh installs Debian's prometheus"
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def test_check_rules_accepts_slo_rules() -> None:
    result = _promtool("check", "rules", str(RULES), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_tests_fire_every_alert(tmp_path: Path) -> None:
    fixed = {
        alert["alert"]: {k: v for k, v in alert["annotations"].items() if k != "summary"}
        for alert in _alerts()
    }
    cases = yaml.safe_load(CASES.read_text(encoding="utf-8"))
    fired = set()
    for case in cases["tests"]:
        for check in case["alert_rule_test"]:
            for expected in check["exp_alerts"]:
                expected["exp_annotations"] = {
                    **fixed[check["alertname"]],
                    **expected.get("exp_annotations", {}),
                }
                fired.add(check["alertname"])
    assert fired == set(fixed), f"alerts no case fires: {sorted(set(fixed) - fired)}"
    shutil.copy(RULES, tmp_path / RULES.name)
    (tmp_path / CASES.name).write_text(yaml.safe_dump(cases), encoding="utf-8")

    result = _promtool("test", "rules", CASES.name, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_tests_fail_when_alert_does_not_fire(tmp_path: Path) -> None:
    # The harness itself can fail: a case expecting an alert on healthy series is refused.
    shutil.copy(RULES, tmp_path / RULES.name)
    case = {
        "rule_files": [RULES.name],
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": "exporter_backlog_rows", "values": "10x20"}],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "ConsumerLagHigh",
                        "exp_alerts": [{"exp_labels": {"severity": "page"}}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "case.yml").write_text(yaml.safe_dump(case), encoding="utf-8")
    assert _promtool("test", "rules", "case.yml", cwd=tmp_path).returncode != 0


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_alert_carries_every_annotation(alert: dict[str, Any]) -> None:
    annotations = alert["annotations"]
    assert set(annotations) >= ANNOTATIONS
    assert annotations["dashboard"].startswith("http://localhost:3000/d/dp-")
    runbook = annotations["runbook"]
    assert runbook.startswith("runbooks/") and runbook.endswith(".md")
    assert (ROOT / runbook).is_file(), f"{alert['alert']}: no runbook {runbook}"


def test_every_slo_has_an_alert() -> None:
    assert {alert["labels"]["slo"] for alert in _alerts()} == SLOS
