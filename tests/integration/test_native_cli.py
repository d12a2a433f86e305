"""`dataplatform up` fails fast, naming the problem and its fix, never with a bare stack trace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DATAPLATFORM = str(Path(sys.executable).parent / "dataplatform")


def _up(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # A separate data dir: this runtime is not the one serving the other tests.
    environment = {**os.environ, "DATAPLATFORM_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [DATAPLATFORM, "up", "--track", "intermediate"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def _assert_clear_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    flat = " ".join(output.split())
    for text in expected:
        assert text in flat, flat


def test_up_busy_port_fails_fast_with_fix(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = _up(tmp_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}")
    _assert_clear_failure(result, f"port {port} is already in use", "ss -ltnp")


def test_up_missing_jar_folder_fails_fast_with_fix(tmp_path: Path) -> None:
    result = _up(tmp_path, DATAPLATFORM_JARS_DIR=str(tmp_path / "nojars"))
    _assert_clear_failure(result, "Kafka broker jars are missing", "./quick_start.sh", "mvn -q -f")


@pytest.mark.parametrize("version", ["11", "21"])
def test_up_wrong_java_fails_fast_with_fix(tmp_path: Path, version: str) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '    java.specification.version = {version}' >&2\n")
    java.chmod(0o755)
    result = _up(tmp_path, DATAPLATFORM_JAVA_HOME=str(tmp_path / "jdk"))
    _assert_clear_failure(
        result, f"Java {version} found, Java 17 needed", "apt-get install -y openjdk-17"
    )


def test_doctor_reports_ready_for_running_platform(platform: object) -> None:
    result = subprocess.run([DATAPLATFORM, "doctor"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ready to run" in result.stdout
