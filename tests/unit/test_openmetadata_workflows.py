"""OpenMetadata ingestion workflow configs, validated by the ingestion library's own models.

OpenMetadata cannot run here (compose only), so its workflows are checked offline: each file in
`docker/openmetadata/workflows/` is read as `metadata ingest -c` reads it and parsed by the
parser that command uses, in `.venv-openmetadata` (tools/install.sh installs it; its pins clash
with the platform's). The catalog_ingestion DAG runs exactly these files.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from dataplatform.settings import project_root

ROOT = project_root()
PYTHON = ROOT / ".venv-openmetadata" / "bin" / "python"
VALIDATOR = ROOT / "tools" / "openmetadata_validate.py"
WORKFLOWS = ROOT / "docker" / "openmetadata" / "workflows"
#: The sources the catalog must have (issue: PostgreSQL, Kafka, the Delta tables, Airflow, and
#: the OpenLineage events' topic).
EXPECTED = {
    "postgres.yaml": "postgres",
    "kafka.yaml": "kafka",
    "deltalake.yaml": "deltalake",
    "airflow.yaml": "airflow",
    "openlineage.yaml": "openlineage",
}
#: What the compose Airflow passes to the tasks, here with stand-in values.
ENV = {
    "POSTGRES_USER": "dataplatform",
    "POSTGRES_PASSWORD": "stand-in",
    "POSTGRES_DB": "dataplatform",
    "S3_ACCESS_KEY": "stand-in",
    "S3_SECRET_KEY": "stand-in",
    "S3_REGION": "us-east-1",
    "OPENMETADATA_JWT_TOKEN": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
}


def _validate(paths: list[Path]) -> dict[str, dict[str, object]]:
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: run `bash tools/install.sh` (./quick_start.sh does)")
    result = subprocess.run(
        [str(PYTHON), "-W", "ignore", str(VALIDATOR), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **ENV},
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stderr[-3000:]
    return {Path(str(line["file"])).name: line for line in lines}


def test_workflows_cover_every_source() -> None:
    found = {
        path.name: yaml.safe_load(path.read_text(encoding="utf-8"))["source"]["type"]
        for path in WORKFLOWS.glob("*.yaml")
    }
    assert found == EXPECTED


#: Broken copies the validator must refuse: `(workflow, key, its misspelling)`.
BROKEN = [
    ("postgres.yaml", "hostPort", "hostPortt"),
    ("openlineage.yaml", "brokerConfig", "brokers"),
    ("deltalake.yaml", "bucketName", "bucket"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """One validator run (importing the library takes seconds) over the workflows and the
    broken copies, named `broken-<workflow>`."""
    folder = tmp_path_factory.mktemp("broken")
    broken = []
    for workflow, key, typo in BROKEN:
        text = (WORKFLOWS / workflow).read_text(encoding="utf-8")
        assert f"{key}:" in text
        path = folder / f"broken-{workflow}"
        path.write_text(text.replace(f"{key}:", f"{typo}:", 1), encoding="utf-8")
        broken.append(path)
    return _validate([*sorted(WORKFLOWS.glob("*.yaml")), *broken])


def test_validate_workflows_with_openmetadata_models_all_valid(
    results: dict[str, dict[str, object]],
) -> None:
    valid = {name: line for name, line in results.items() if not name.startswith("broken-")}
    assert set(valid) == set(EXPECTED)
    invalid = {name: line["error"] for name, line in valid.items() if not line["ok"]}
    assert not invalid


@pytest.mark.parametrize(("workflow", "key", "typo"), BROKEN, ids=[b[0] for b in BROKEN])
def test_validate_workflow_broken_key_refused(
    results: dict[str, dict[str, object]], workflow: str, key: str, typo: str
) -> None:
    result = results[f"broken-{workflow}"]
    assert result["ok"] is False
    assert typo in str(result["error"]) or key in str(result["error"])


def test_workflows_take_secrets_from_environment() -> None:
    for path in WORKFLOWS.glob("*.yaml"):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        security = config["workflowConfig"]["openMetadataServerConfig"]["securityConfig"]
        assert security["jwtToken"] == "${OPENMETADATA_JWT_TOKEN}", path.name
        assert "stand-in" not in path.read_text(encoding="utf-8")
