"""Processes end with their real exit code even though they skip native teardown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dataplatform.shutdown import exit_code_of

DATAPLATFORM = Path(sys.executable).parent / "dataplatform"


@pytest.mark.parametrize(("value", "code"), [(None, 0), (0, 0), (3, 3), ("bad input", 1)])
def test_exit_code_of_matches_the_interpreter(
    value: object, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code_of(SystemExit(value)) == code
    assert capsys.readouterr().err == ("bad input\n" if isinstance(value, str) else "")


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["no-such-command"], 2)])
def test_console_script_keeps_the_apps_exit_code(argv: list[str], code: int) -> None:
    result = subprocess.run(
        [str(DATAPLATFORM), *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == code, result.stderr
    assert "dataplatform" in result.stdout + result.stderr


def test_exit_now_flushes_buffered_output() -> None:
    script = (
        "import logging, sys\n"
        "from dataplatform.shutdown import exit_now\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
        "sys.stdout.write('unflushed line')\n"
        "logging.getLogger('job').info('last log line')\n"
        "exit_now(5)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (5, "unflushed line")
    assert "last log line" in result.stderr
