"""Disaster-recovery drills on the running native platform, with measured RPO and RTO.

`dataplatform drill kafka` loses the Kafka broker's whole data directory on purpose and
recovers it with the steps of runbooks/kafka_restore_from_backup.md, run as the same
`dataplatform` commands an operator types. It measures:

- **RPO**: the time between the backup's snapshot and the loss, and what it cost: how many
  records acknowledged after the snapshot were in no backup and not yet landed (only their
  clients can send them again: resent with their `Idempotency-Key`, exactly those are published
  again, and the others get their original receipt);
- **RTO**: from the loss until the topics are restored and checked, until the API accepts
  records again, and until landing has re-read the restored topic.

It then checks that nothing was lost or reordered: every record acknowledged before the backup
is in bronze, every bronze copy of one record carries the same ingest id and the same order
token (the restored records keep the token landing gave them the first time), every record
acknowledged after it is in bronze once after its client's resend, and every receipt issued
before the loss still answers `GET /ingest/<id>`.

Destructive: run it only on a platform of your own (its own ports and data folder), never on
one that holds data you need.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from dataplatform.contracts import TRANSACTIONS
from dataplatform.settings import IngestorSettings, get_ingestor_settings, get_runtime_settings

log = logging.getLogger(__name__)

#: The table the drill checks: the transactions' bronze table.
BRONZE = TRANSACTIONS.table_path("bronze")


class DrillError(Exception):
    """A drill step failed or a check did not hold; the message says which."""


@dataclass
class DrillSteps:
    """Wall-clock seconds of each named step of a drill, in order."""

    steps: list[tuple[str, float]] = field(default_factory=list)

    def run(self, name: str, action: Callable[[], Any]) -> Any:
        """Run one step, timing it; what `action` returns."""
        started = time.monotonic()
        result = action()
        self.steps.append((name, time.monotonic() - started))
        log.info("drill: %s (%.1f s)", name, self.steps[-1][1])
        return result

    def lines(self) -> list[str]:
        """The steps as text lines."""
        return ["steps (wall clock):", *(f"  {s:7.1f} s  {name}" for name, s in self.steps)]


@dataclass
class DrillReport(DrillSteps):
    """The figures of one drill, printed at the end and recorded in docs/OPERATIONS.md."""

    records_before_backup: int = 0
    records_after_backup: int = 0
    landed_after_backup_before_loss: int = 0
    published_again_after_loss: int = 0
    rpo_window_s: float = 0.0
    rto_topics_restored_s: float = 0.0
    rto_api_accepting_s: float = 0.0
    rto_landing_caught_up_s: float = 0.0
    receipts_checked: int = 0
    silver_keys_checked: int = 0

    @property
    def records_lost(self) -> int:
        """Acknowledged after the snapshot, in no backup and not landed before the loss."""
        return self.records_after_backup - self.landed_after_backup_before_loss

    def lines(self) -> list[str]:
        """The report as text lines."""
        return [
            *super().lines(),
            f"records acknowledged before the backup: {self.records_before_backup}",
            f"records acknowledged after the backup:  {self.records_after_backup} "
            f"({self.landed_after_backup_before_loss} of them landed before the loss)",
            f"RPO: {self.rpo_window_s:.1f} s between the backup's snapshot and the loss; "
            f"{self.records_lost} acknowledged records not recoverable from the platform; "
            f"{self.published_again_after_loss} published again when their clients resent them "
            "with their Idempotency-Key",
            f"RTO: topics restored and checked {self.rto_topics_restored_s:.1f} s; "
            f"API accepting {self.rto_api_accepting_s:.1f} s; "
            f"landing caught up {self.rto_landing_caught_up_s:.1f} s (after the loss)",
            f"receipts issued before the loss answering GET /ingest/<id>: {self.receipts_checked}",
            f"keys with one silver row holding their latest version: {self.silver_keys_checked}"
            + ("" if self.silver_keys_checked else " (curation not run: --curate)"),
        ]


def run_cli(*args: str, timeout_s: float = 900) -> str:
    """Run `dataplatform <args>` as an operator would; its stdout, or DrillError."""
    command = [sys.executable, "-m", "dataplatform.cli.main", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise DrillError(
            f"`dataplatform {' '.join(args)}` exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result.stdout


def _wait(what: str, check: Callable[[], bool], *, timeout_s: float, every_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise DrillError(f"timed out after {timeout_s:.0f} s waiting until {what}")
        time.sleep(every_s)


class _Api:
    """The ingest API of the platform, as a client with the platform's API key uses it."""

    def __init__(self, settings: IngestorSettings) -> None:
        self._client = httpx.Client(
            base_url=settings.base_url,
            headers={"X-API-Key": settings.api_key.get_secret_value()},
            timeout=30,
        )

    def ingest(self, record: dict[str, Any], key: str | None = None) -> str | None:
        """The ingest id of an accepted record (sent with `Idempotency-Key: key` if given);
        None when the API did not accept it."""
        headers = {} if key is None else {"Idempotency-Key": key}
        try:
            response = self._client.post(
                "/ingest-financial-transaction/", json=record, headers=headers
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return str(response.json()["ingest_id"])

    def receipt_found(self, ingest_id: str) -> bool:
        """Whether `GET /ingest/<id>` knows the record."""
        return self._client.get(f"/ingest/{ingest_id}").status_code == 200


def _transaction(run: str, i: int, version: int) -> dict[str, Any]:
    """Record `i` of this drill; versions of one key share the event time (order decides)."""
    return {
        "transaction_id": f"DRILL-{run}-{i:05d}",
        "timestamp": "2026-01-15T10:00:00+00:00",
        "account_id": "ACC-100001",
        "amount": f"{10 + i}.{version:02d}",
        "currency": "EUR",
        "transaction_type": "debit",
        "merchant_id": "MER-001",
        "category": "drill",
    }


def _key(run: str, i: int, version: int) -> str:
    """The `Idempotency-Key` of version `version` of drill record `i`, sent and resent."""
    return f"{run}-{i}-{version}"


def _bronze_rows(ingest_ids: set[str]) -> list[dict[str, Any]]:
    """Bronze rows of these ingest ids (delta-rs: no Spark session)."""
    import pyarrow.compute as pc

    from dataplatform.lake import Lake

    table = Lake.load().delta_rs(BRONZE)
    if table is None:
        return []
    data = table.to_pyarrow_table(columns=["ingest_id", "source_epoch", "source_offset"])
    chosen = data.filter(pc.is_in(data["ingest_id"], value_set=_string_array(ingest_ids)))
    return chosen.to_pylist()


def _string_array(values: Iterable[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(values), type=pa.string())


def _landed(ingest_ids: set[str]) -> set[str]:
    return {row["ingest_id"] for row in _bronze_rows(ingest_ids)}


def kafka_drill(*, records: int = 200, timeout_s: float = 900, curate: bool = False) -> DrillReport:
    """Lose the Kafka broker's data, recover it from a backup, measure RPO/RTO and check.

    Args:
        records: Records sent before the backup (half of them get a second version) and,
            again, after it (the first half of those landed before the loss).
        timeout_s: The longest wait of each step.
        curate: Also run curation afterwards and check silver: one row per key, the latest
            version (a Spark batch job: minutes on a small machine).

    Raises:
        DrillError: A step failed or a check did not hold.
    """
    runtime = get_runtime_settings()
    api = _Api(get_ingestor_settings())
    report = DrillReport()
    run = uuid.uuid4().hex[:8]

    step = report.run

    def send(first: int, count: int) -> dict[str, str]:
        ids: dict[str, str] = {}
        for i in range(first, first + count):
            for version in (1, 2) if i % 2 == 0 else (1,):
                ingest_id = api.ingest(_transaction(run, i, version), key=_key(run, i, version))
                if ingest_id is None:
                    raise DrillError(f"the API refused drill record {i} before the loss")
                ids[ingest_id] = f"{i}/{version}"
        return ids

    def landing_lands(name: str, what: str, ingest_ids: set[str]) -> None:
        step(
            name,
            lambda: _wait(
                f"{what} in bronze", lambda: _landed(ingest_ids) == ingest_ids, timeout_s=timeout_s
            ),
        )

    before = step(f"send {records} records (+ second versions)", lambda: send(0, records))
    report.records_before_backup = len(before)
    landing_lands("landing lands them", "every record sent before the backup is", set(before))
    backup_uri = step("dataplatform backup kafka", lambda: run_cli("backup", "kafka").strip())
    snapshot = datetime.fromisoformat(_manifest_time(backup_uri))
    # Half of them land before the loss (a resend must not publish those again), half not.
    half = records // 2
    after = step(f"send {half} more records", lambda: send(records, half))
    landing_lands("landing lands them", "the first records sent after the backup are", set(after))
    after |= step(
        f"send {records - half} more records", lambda: send(records + half, records - half)
    )
    report.records_after_backup = len(after)

    # The loss: the broker stops and its data directory is gone.
    lost_at = time.monotonic()
    report.rpo_window_s = (datetime.now(UTC) - snapshot).total_seconds()
    step("LOSS: stop kafka, delete its data folder", lambda: _lose_kafka(runtime.data_dir))

    # Recovery, the runbook's order: landing stopped and reset, broker back, topics restored.
    step(
        "dataplatform supervisorctl stop landing",
        lambda: run_cli("supervisorctl", "stop", "landing"),
    )
    # What landing committed until it stopped is safe in bronze; the rest of `after` is lost.
    report.landed_after_backup_before_loss = len(_landed(set(after)))
    for entity in ("finance/transactions", "insurance/claims"):
        step(
            f"dataplatform lake reset-landing --entity {entity} --yes",
            functools.partial(run_cli, "lake", "reset-landing", "--entity", entity, "--yes"),
        )
    step(
        "dataplatform up (broker formatted, topics created, landing started)", lambda: run_cli("up")
    )
    step(
        "dataplatform backup kafka-restore <uri>",
        lambda: run_cli("backup", "kafka-restore", backup_uri),
    )
    report.rto_topics_restored_s = time.monotonic() - lost_at
    probe = _transaction(run, 99999, 1)
    step(
        "API accepts records again",
        lambda: _wait(
            "the API accepts a record", lambda: api.ingest(probe) is not None, timeout_s=timeout_s
        ),
    )
    report.rto_api_accepting_s = time.monotonic() - lost_at
    step(
        "landing re-reads the restored topic",
        lambda: _wait(
            "every restored record is in bronze twice (first landing and the re-read)",
            lambda: _relanded(set(before)),
            timeout_s=timeout_s,
        ),
    )
    report.rto_landing_caught_up_s = time.monotonic() - lost_at

    _check_bronze(set(before))
    resent = step(
        "clients send the records acknowledged after the backup again, with their Idempotency-Key",
        lambda: _resend(api, run, after),
    )
    report.published_again_after_loss = sum(old != new for old, new in resent.items())
    landing_lands(
        "landing lands what was published again",
        "every record acknowledged after the backup is",
        set(resent.values()),
    )
    _check_resent(resent, report)
    if curate:
        step(
            "dataplatform run curation --entity finance/transactions",
            lambda: run_cli(
                "run", "curation", "--entity", "finance/transactions", "--run-id", f"drill-{run}"
            ),
        )
        report.silver_keys_checked = _check_silver(run, records)
    missing = [i for i in [*before, *after] if not api.receipt_found(i)]
    if missing:
        raise DrillError(f"{len(missing)} receipts issued before the loss are gone: {missing[:3]}")
    report.receipts_checked = len(before) + len(after)
    return report


def _resend(api: _Api, run: str, sent: dict[str, str]) -> dict[str, str]:
    """Send each record again with its Idempotency-Key: original ingest id -> the new answer."""
    answers = {}
    for ingest_id, label in sent.items():
        i, version = (int(part) for part in label.split("/"))
        again = api.ingest(_transaction(run, i, version), key=_key(run, i, version))
        if again is None:
            raise DrillError(f"the API refused the resend of drill record {label}")
        answers[ingest_id] = again
    return answers


def _check_resent(resent: dict[str, str], report: DrillReport) -> None:
    """Exactly the records lost with the topic were published again: each record acknowledged
    after the backup is in bronze under one id only."""
    again = {old for old, new in resent.items() if old != new}
    twice = _landed(again)
    if twice:
        raise DrillError(
            f"{len(twice)} records that had landed before the loss were published again "
            f"(now twice in bronze), e.g. {next(iter(twice))}"
        )
    if len(again) != report.records_lost:
        raise DrillError(
            f"{len(again)} records published again, but {report.records_lost} were lost"
        )


def _manifest_time(uri: str) -> str:
    from dataplatform.kafka_backup import read_manifest
    from dataplatform.settings import get_s3_settings

    return read_manifest(get_s3_settings(), uri).taken_at


def _lose_kafka(data_dir: Any) -> None:
    run_cli("supervisorctl", "stop", "kafka")
    shutil.rmtree(data_dir / "kafka")


def _relanded(ingest_ids: set[str]) -> bool:
    counts: dict[str, int] = {}
    for row in _bronze_rows(ingest_ids):
        counts[row["ingest_id"]] = counts.get(row["ingest_id"], 0) + 1
    return len(counts) == len(ingest_ids) and min(counts.values()) >= 2


def _check_bronze(ingest_ids: set[str]) -> None:
    """Each record's bronze copies carry one order token: the re-read reordered nothing."""
    tokens: dict[str, set[tuple[int, int]]] = {}
    for row in _bronze_rows(ingest_ids):
        tokens.setdefault(row["ingest_id"], set()).add((row["source_epoch"], row["source_offset"]))
    lost = ingest_ids - set(tokens)
    if lost:
        raise DrillError(f"{len(lost)} records acknowledged before the backup are not in bronze")
    moved = {ingest_id: token for ingest_id, token in tokens.items() if len(token) != 1}
    if moved:
        raise DrillError(
            f"{len(moved)} restored records landed with a new order token, e.g. "
            f"{next(iter(moved.items()))}: versions could be reordered in silver"
        )


def _check_silver(run: str, records: int) -> int:
    """Each key sent before the backup has one silver row, holding its latest version."""
    from decimal import Decimal

    import pyarrow.compute as pc

    from dataplatform.lake import Lake

    table = Lake.load().delta_rs(TRANSACTIONS.table_path("silver"))
    if table is None:
        raise DrillError("no silver table after curation")
    data = table.to_pyarrow_table(columns=["transaction_id", "amount"])
    keys = [f"DRILL-{run}-{i:05d}" for i in range(records)]
    rows = data.filter(pc.is_in(data["transaction_id"], value_set=_string_array(keys))).to_pylist()
    found: dict[str, list[Decimal]] = {}
    for row in rows:
        found.setdefault(row["transaction_id"], []).append(row["amount"])
    for i, key in enumerate(keys):
        latest = Decimal(_transaction(run, i, 2 if i % 2 == 0 else 1)["amount"])
        if found.get(key) != [latest]:
            raise DrillError(f"silver holds {found.get(key)} for {key}, expected [{latest}]")
    return len(keys)
