"""Headless Chromium (Debian's `chromium`, installed by ./run_tests.sh) for the tests that look
at a page as a person would: its DOM after scripts ran, or a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but loopback is reachable: a page that needs a CDN shows it.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=15000",
]


def chromium(tmp_path: Path, url: str, *args: str, window: str = "1280,2400") -> str:
    """Open `url` with `args` (`--dump-dom`, `--screenshot=<file>`); what Chromium printed.

    A fresh profile under `tmp_path` keeps runs apart.
    """
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(binary).exists(), "chromium is missing: ./run_tests.sh installs it"
    result = subprocess.run(
        [
            binary,
            *FLAGS,
            f"--window-size={window}",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
