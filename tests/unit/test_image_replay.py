"""tests/images.py, the native replay of the Dockerfiles' Python steps: its parsing rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.images import ImageEnv, build_image_venv, container_argv, native_executable


def test_build_image_venv_unknown_step_refused(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11.13-slim-bookworm\nRUN curl -fsSL https://x | sh\n")
    with pytest.raises(AssertionError, match="unknown Dockerfile step"):
        build_image_venv(dockerfile, tmp_path / "root")


def test_container_argv_bash_script_expanded_from_env(tmp_path: Path) -> None:
    image = ImageEnv(root=tmp_path, env={"PATH": "/opt/venv/bin:$PATH"})
    spec: dict[str, object] = {
        "image": "dataplatform/airflow:0.1.0",
        "command": ["bash", "-c", 'umask 077 && exec airflow pools set spark "${SLOTS}" "d e"'],
    }
    argv = container_argv(image, spec, {"SLOTS": "2"})
    assert argv == [[native_executable(image, "airflow"), "pools", "set", "spark", "2", "d e"]]


def test_container_argv_airflow_entrypoint_prefixes_airflow(tmp_path: Path) -> None:
    image = ImageEnv(root=tmp_path)
    spec: dict[str, object] = {
        "image": "dataplatform/airflow:0.1.0",
        "command": ["scheduler", "--skip-serve-logs"],
    }
    argv = container_argv(image, spec, {})
    assert argv == [[native_executable(image, "airflow"), "scheduler", "--skip-serve-logs"]]


def test_container_argv_venv_executable_found_on_image_path(tmp_path: Path) -> None:
    image = ImageEnv(root=tmp_path, env={"PATH": "/opt/venv/bin:$PATH"}, cmd=["dataplatform"])
    (tmp_path / "opt" / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "opt" / "venv" / "bin" / "dataplatform").touch()
    argv = container_argv(image, {"image": "dataplatform/platform:0.1.0"}, {})
    assert argv == [[str(tmp_path / "opt" / "venv" / "bin" / "dataplatform")]]
