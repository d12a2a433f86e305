"""Landing's progress reports name the bronze version of the query's latest append."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from dataplatform.db.progress import PartitionProgress, ProgressWriter
from pyspark_jobs.landing import BatchWriter, ProgressRecorder


class _Writer:
    def __init__(self) -> None:
        self.rows: list[PartitionProgress] = []

    def landed(self, rows: Sequence[PartitionProgress]) -> None:
        self.rows.extend(rows)


class _Batches:
    bronze_table = "s3://lakehouse/bronze/finance/transactions"
    bronze_version: int | None = None


def _report(end: int) -> dict[str, Any]:
    return {"sources": [{"endOffset": {"finance.transactions.v1": {"0": end}}}]}


def test_progress_rows_carry_the_latest_bronze_version_or_none_before_an_append() -> None:
    writer, batches = _Writer(), _Batches()
    recorder = ProgressRecorder(cast(ProgressWriter, writer))
    recorder.topics["finance.transactions.v1"] = ("tid", "finance.transactions")
    recorder.batches["finance.transactions.v1"] = cast(BatchWriter, batches)

    recorder.observe(_report(5))  # a run's first report, before its first append
    batches.bronze_version = 7
    recorder.observe(_report(9))
    recorder.observe(_report(9))  # an idle trigger: nothing moved, nothing written

    assert [(r.end_offset, r.bronze_table, r.bronze_version) for r in writer.rows] == [
        (5, batches.bronze_table, None),
        (9, batches.bronze_table, 7),
    ]
