"""The runbooks' diagnostic commands, run against the real running platform.

tests/unit/test_runbooks.py checks that every command of runbooks/*.md parses; this module
runs them: each native command line is pasted into bash from the repository root, as an
operator would, with the page's variables set, and must succeed. Commands that change the
platform (stop or restart a service, rewrite or restore a table, reset a checkpoint, revoke a
key, send load, migrate Airflow's database) are not run here; `NOT_RUN` says why for each,
and the drills (`dataplatform drill kafka|postgres|delta`, tests/integration/test_dr_drills.py,
tests/integration/test_kafka_backup.py, tests/integration/test_backup.py) exercise the
recoveries themselves.

The pages are written for the default ports and data folder; when the platform under test
has others (a second platform on one machine), the test substitutes them, nothing else.
Before the commands run, the module gives the platform what the pages read: a few records
through the API, landed in bronze, and one curation run (silver, gold, `_state`).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from dataplatform.lake import Lake
from dataplatform.native.services import TRACK_SERVICES, Context
from dataplatform.settings import Track, get_ingestor_settings
from fastapi_app.testing import create_api_key
from tests import factories
from tests.runbooks import PAGES, ROOT, Line, page_lines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

LINES = [line for page in PAGES for line in page_lines(page)]

#: Values an operator sets for the incident instead of the page's examples.
LIVE_VARIABLES = {
    # The page's 41 is an example; version 0 exists on every table.
    "GOOD_VERSION": "0",
}

#: Commands this test never runs, by the first words of the command (program name, then its
#: arguments), each with the reason. The first match wins.
NOT_RUN: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("dataplatform", "supervisorctl"),
        "stops, starts or restarts a service of the platform under test; the recoveries are "
        "exercised by `dataplatform drill kafka` on a platform of its own",
    ),
    (("dataplatform", "up"), "starts services: the platform fixture already did"),
    (("dataplatform", "lake", "restore"), "rewrites a table to an older version"),
    (("dataplatform", "lake", "optimize"), "rewrites the table's files (compaction)"),
    (("dataplatform", "lake", "reset-landing"), "deletes landing's checkpoint"),
    (
        ("dataplatform", "lake", "replay"),
        "produces quarantined records again (its --dry-run form is run)",
    ),
    (
        ("dataplatform", "run"),
        "runs a Spark job that writes tables; the module runs one curation before the "
        "diagnostics instead of each page's recovery run",
    ),
    (("python", "-m", "pyspark_jobs.quality"), "a Spark job that writes the quality results"),
    (("dataplatform", "apikey", "revoke"), "revokes a client's key"),
    (("dataplatform", "apikey", "create"), "creates a key whose secret is printed once"),
    (("dataplatform", "generate"), "sends load to the API"),
    (("dataplatform", "airflow", "db", "migrate"), "changes Airflow's metadata schema"),
    (("dataplatform", "airflow", "dags", "trigger"), "starts DAG runs"),
    (("dataplatform", "airflow", "dags", "pause"), "changes the schedule"),
    (("dataplatform", "airflow", "dags", "unpause"), "changes the schedule"),
    (("dataplatform", "airflow", "tasks", "clear"), "clears task instances"),
    (
        ("dataplatform", "airflow", "tasks", "states-for-dag-run"),
        "needs the id of the incident's DAG run",
    ),
    (
        ("dataplatform", "backup", "verify"),
        "needs the backup of the page's day; tests/integration/test_backup.py verifies a "
        "fresh backup",
    ),
    (
        ("dataplatform", "backup", "kafka-restore"),
        "produces the backup's records into the topics (it refuses topics holding records); "
        "run by `dataplatform drill kafka` and tests/integration/test_kafka_backup.py",
    ),
    (
        ("dataplatform", "backup", "restore"),
        "creates databases and, with --replace, renames Airflow's; run by `dataplatform drill "
        "postgres` (tests/integration/test_dr_drills.py) and tests/integration/test_backup.py",
    ),
    (
        ("dataplatform", "drill"),
        "the drills have their own tests (tests/integration/test_dr_drills.py); `drill delta` "
        "runs a Spark job",
    ),
)
AIRFLOW_SERVICES = {"airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}


def _words(line: Line) -> tuple[str, ...]:
    program = os.path.basename(line.argv[0])
    return (program, *line.argv[1:])


def reason_not_run(line: Line, track: Track) -> str | None:
    """Why `line` is not run on a platform of `track`; None when it is run."""
    words = _words(line)
    if words[:3] == ("dataplatform", "lake", "replay") and "--dry-run" in words:
        return None
    for prefix, reason in NOT_RUN:
        if words[: len(prefix)] == prefix:
            return reason
    has_airflow = any(name.startswith("airflow") for name in TRACK_SERVICES[track])
    if not has_airflow and (
        words[:2] == ("dataplatform", "airflow") or set(words) & AIRFLOW_SERVICES
    ):
        return f"Airflow is not part of the {track} track"
    if "--track" in words and words[words.index("--track") + 1] != track:
        return f"names another track than the platform's ({track})"
    return None


def _for_platform(text: str, ctx: Context) -> str:
    """The line with the default ports and data folder replaced by the platform's own."""
    ingestor = get_ingestor_settings()
    text = text.replace("127.0.0.1:9092", ctx.kafka.bootstrap_servers.split(",")[0])
    text = text.replace("http://127.0.0.1:8000", ingestor.base_url)
    return re.sub(r"(?<![\w/.])data/", f"{ctx.runtime.data_dir}/", text)


def _line_id(line: Line) -> str:
    return f"{line.page}:{' '.join(_words(line))[:90]}"


@pytest.fixture(scope="module")
def live_state(platform: Context, test_track: Track) -> Iterator[Context]:
    """The platform with what the pages read: records in bronze, one curation run."""
    if "kafka" not in TRACK_SERVICES[test_track]:
        pytest.skip("the runbooks are written for the Kafka tracks (landing, curation)")
    ingestor = get_ingestor_settings()
    key = create_api_key(platform.postgres, ingestor.db_schema)
    ids = []
    with httpx.Client(base_url=ingestor.base_url, headers={"X-API-Key": key}) as http:
        for _ in range(5):
            response = http.post("/ingest-financial-transaction/", json=factories.transaction())
            assert response.status_code == 200, response.text
            ids.append(response.json()["ingest_id"])
    deadline = time.monotonic() + 600
    while not _in_bronze(set(ids)):
        assert time.monotonic() < deadline, "landing did not land the records within 600 s"
        time.sleep(3)
    _bash(
        f".venv/bin/dataplatform run curation --entity finance/transactions "
        f"--run-id runbooks-live-{uuid.uuid4().hex[:8]}",
        {},
        timeout_s=1200,
    )
    yield platform


def _in_bronze(ids: set[str]) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc

    table = Lake.load(prefix="").delta_rs("bronze/finance/transactions")
    if table is None:
        return False
    data = table.to_pyarrow_table(columns=["ingest_id"])
    wanted = pa.array(sorted(ids), type=pa.string())
    found = data.filter(pc.is_in(data["ingest_id"], value_set=wanted))["ingest_id"]
    return ids <= set(found.to_pylist())


def _bash(text: str, variables: dict[str, str], *, timeout_s: float = 300) -> str:
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", text],
        cwd=ROOT,
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, (
        f"`{text}` exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def test_classify_runbook_commands_every_page_runs_some() -> None:
    """Every page with commands has diagnostics that run; every other command says why not."""
    for page in {line.page for line in LINES}:
        runs = [
            line for line in LINES if line.page == page and not reason_not_run(line, "advanced")
        ]
        assert runs, f"runbooks/{page}.md: no command would run against the platform"


@pytest.mark.parametrize("line", LINES, ids=_line_id)
def test_run_runbook_command_live(line: Line, live_state: Context, test_track: Track) -> None:
    reason = reason_not_run(line, test_track)
    if reason:
        pytest.skip(reason)
    variables = {**dict(line.variables), **LIVE_VARIABLES}
    _bash(_for_platform(line.text, live_state), variables)
