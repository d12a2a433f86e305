"""Curation's progress reports carry the records it quarantined, and make up for the ones a
missed report (PostgreSQL down) would have carried."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from dataplatform.contracts import TRANSACTIONS
from dataplatform.db.progress import ProgressWriter
from dataplatform.lake import Lake
from dataplatform.settings import S3Settings
from pyspark_jobs import curation

LAKE = Lake(s3=S3Settings(bucket="lakehouse"), prefix="tests/x")
BRONZE = "s3://lakehouse/tests/x/bronze/finance/transactions"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


class _Writer:
    """`ProgressWriter` whose PostgreSQL says `reported` (None: down)."""

    def __init__(self, reported: int | None) -> None:
        self.reported = reported
        self.reports: list[tuple[str, str, int, list[tuple[str, str]]]] = []

    def last_curated(self, bronze_table: str) -> int | None:
        assert bronze_table == BRONZE
        return self.reported

    def curated(
        self,
        *,
        bronze_table: str,
        entity: str,
        bronze_version: int,
        quarantined: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.reports.append((bronze_table, entity, bronze_version, sorted(quarantined)))


@pytest.fixture
def missed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What the quarantine table holds after each reported version asked for (one row)."""
    asked: list[int] = []

    def quarantined_since(lake: Lake, entity: Any, reported: int) -> list[tuple[str, str]]:
        asked.append(reported)
        return [("id-missed", "failed expectation(s): event_time_not_in_future")]

    monkeypatch.setattr(curation, "quarantined_since", quarantined_since)
    return asked


def _report(writer: _Writer, version: int, after: int, rows: list[Any]) -> None:
    curation.report_progress(
        cast(ProgressWriter, writer),
        LAKE,
        TRANSACTIONS,
        version,
        processed_before=after,
        quarantined=rows,
    )


def test_report_carries_the_run_s_quarantined_records_with_its_progress(
    missed: list[int],
) -> None:
    writer = _Writer(reported=4)
    _report(writer, 7, 4, [("id-b", "failed: x"), (None, "no id: not reported"), ("id-a", "y")])
    assert writer.reports == [
        (BRONZE, "finance.transactions", 7, [("id-a", "y"), ("id-b", "failed: x")])
    ]
    assert missed == []  # the previous report was made: nothing to make up


def test_report_is_skipped_while_postgres_is_down(missed: list[int]) -> None:
    writer = _Writer(reported=None)
    _report(writer, 7, 4, [("id-a", "y")])
    assert writer.reports == []
    assert missed == []


def test_report_after_a_missed_one_adds_the_quarantined_records_since_the_last_reported(
    missed: list[int],
) -> None:
    # Versions 3..4 were processed by a run whose report failed; the last one reported is 2.
    writer = _Writer(reported=2)
    _report(writer, 7, 4, [("id-a", "y")])
    assert writer.reports == [
        (
            BRONZE,
            "finance.transactions",
            7,
            [("id-a", "y"), ("id-missed", "failed expectation(s): event_time_not_in_future")],
        )
    ]
    assert missed == [2]

    # A run with nothing new makes the missed report up too.
    writer = _Writer(reported=2)
    _report(writer, 4, 4, [])
    assert [report[2:] for report in writer.reports] == [
        (4, [("id-missed", "failed expectation(s): event_time_not_in_future")])
    ]


def test_report_before_any_version_or_without_writer_does_nothing(missed: list[int]) -> None:
    writer = _Writer(reported=-1)
    _report(writer, -1, -1, [])
    curation.report_progress(None, LAKE, TRANSACTIONS, 3, processed_before=2)
    assert writer.reports == []
    assert missed == []


def test_quarantine_start_is_the_finish_of_the_last_run_not_past_the_reported_version() -> None:
    runs = [
        {"bronze_version_to": 2, "finished_at": T0},
        {"bronze_version_to": 5, "finished_at": T0 + timedelta(hours=1)},
        # A rerun (`--from-bronze-version`) that found nothing newer than version 5.
        {"bronze_version_to": 5, "finished_at": T0 + timedelta(hours=2)},
        {"bronze_version_to": 9, "finished_at": T0 + timedelta(hours=3)},
    ]
    assert curation.quarantine_start(runs, 5) == T0 + timedelta(hours=2)
    assert curation.quarantine_start(runs, 4) == T0
    assert curation.quarantine_start(runs, 9) == T0 + timedelta(hours=3)
    # Nothing reported, or nothing that old: every quarantined row counts.
    assert curation.quarantine_start(runs, -1) is None
    assert curation.quarantine_start([], 3) is None
