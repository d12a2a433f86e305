"""`delta_table_*` metrics read from real Delta logs (delta-rs tables in a temporary folder)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dataplatform.observability import delta_metrics
from dataplatform.observability.delta_metrics import DeltaTableCollector, LakeTable, lake_tables

BRONZE = LakeTable("bronze/finance/transactions", "bronze", "finance.transactions")
QUARANTINE = LakeTable(
    "quarantine/landing/finance/transactions", "quarantine", "finance.transactions"
)


class FolderLake:
    """The lake's table lookup over a local folder (`Lake.delta_rs` opens S3 URIs)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def delta_rs(self, table: str) -> DeltaTable | None:
        path = self.root / table
        return DeltaTable(str(path)) if DeltaTable.is_deltatable(str(path)) else None


def _append(root: Path, table: LakeTable, rows: int) -> None:
    write_deltalake(str(root / table.path), pa.table({"n": list(range(rows))}), mode="append")


def _samples(collector: DeltaTableCollector) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, sample.labels.get("table", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _collector(root: Path, *tables: LakeTable, small: int = 1 << 20) -> DeltaTableCollector:
    return DeltaTableCollector(FolderLake(root), small, list(tables))  # type: ignore[arg-type]


def test_refresh_table_reports_files_rows_freshness_and_maintenance(tmp_path: Path) -> None:
    for rows in (3, 4, 5):
        _append(tmp_path, BRONZE, rows)  # versions 0-2
    DeltaTable(str(tmp_path / BRONZE.path)).optimize.compact()  # 3
    _append(tmp_path, BRONZE, 2)  # 4
    before_vacuum = time.time()
    DeltaTable(str(tmp_path / BRONZE.path)).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )  # 5, 6: VACUUM START, VACUUM END
    collector = _collector(tmp_path, BRONZE, small=1 << 20)

    collector.refresh()
    got = _samples(collector)

    table = BRONZE.path
    assert got[("delta_table_version", table)] == 6
    assert got[("delta_table_files", table)] == 2
    assert got[("delta_table_small_files", table)] == 2
    assert got[("delta_table_rows", table)] == 14
    assert got[("delta_table_size_bytes", table)] > 0
    assert got[("delta_table_commits_since_optimize", table)] == 3
    assert got[("delta_table_last_vacuum_timestamp_seconds", table)] >= before_vacuum - 1
    assert got[("delta_table_last_optimize_timestamp_seconds", table)] <= before_vacuum + 1
    assert abs(got[("delta_table_last_commit_timestamp_seconds", table)] - time.time()) < 60
    assert got[("delta_metrics_last_refresh_timestamp_seconds", "")] >= before_vacuum


def test_refresh_small_file_size_counts_only_smaller_files(tmp_path: Path) -> None:
    _append(tmp_path, BRONZE, 3)
    collector = _collector(tmp_path, BRONZE, small=1)

    collector.refresh()

    assert _samples(collector)[("delta_table_small_files", BRONZE.path)] == 0


def test_refresh_new_commits_read_incrementally(tmp_path: Path) -> None:
    _append(tmp_path, BRONZE, 1)
    collector = _collector(tmp_path, BRONZE)
    collector.refresh()
    first = _samples(collector)

    time.sleep(0.01)
    for _ in range(3):
        _append(tmp_path, BRONZE, 2)
    collector.refresh()
    second = _samples(collector)

    table = BRONZE.path
    assert first[("delta_table_files", table)] == 1
    assert second[("delta_table_version", table)] == 3
    assert second[("delta_table_files", table)] == 4
    assert second[("delta_table_rows", table)] == 7
    # Never optimized, whole log read: every commit is debt.
    assert second[("delta_table_commits_since_optimize", table)] == 4
    assert (
        second[("delta_table_last_commit_timestamp_seconds", table)]
        > first[("delta_table_last_commit_timestamp_seconds", table)]
    )
    assert ("delta_table_last_optimize_timestamp_seconds", table) not in second


def test_refresh_long_log_reads_at_most_history_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(5):
        _append(tmp_path, BRONZE, 1)  # versions 0-4
    monkeypatch.setattr(delta_metrics, "HISTORY_LIMIT", 2)
    collector = _collector(tmp_path, BRONZE)

    collector.refresh()

    # Versions 3 and 4 read: at least 2 commits since an OPTIMIZE (a lower bound).
    got = _samples(collector)
    assert got[("delta_table_commits_since_optimize", BRONZE.path)] == 2
    assert got[("delta_table_last_commit_timestamp_seconds", BRONZE.path)] > 0


def test_refresh_missing_table_has_no_series_until_written(tmp_path: Path) -> None:
    _append(tmp_path, BRONZE, 1)
    collector = _collector(tmp_path, BRONZE, QUARANTINE)
    collector.refresh()
    assert ("delta_table_files", QUARANTINE.path) not in _samples(collector)

    _append(tmp_path, QUARANTINE, 1)
    collector.refresh()

    got = _samples(collector)
    assert got[("delta_table_files", QUARANTINE.path)] == 1
    assert got[("delta_table_files", BRONZE.path)] == 1


def test_refresh_unreadable_table_keeps_last_numbers_and_counts_error(tmp_path: Path) -> None:
    _append(tmp_path, BRONZE, 2)
    collector = _collector(tmp_path, BRONZE)
    collector.refresh()
    for log_file in (tmp_path / BRONZE.path / "_delta_log").iterdir():
        log_file.write_text("not json", encoding="utf-8")
    collector._open.clear()  # reopen from the damaged log

    collector.refresh()

    got = _samples(collector)
    assert got[("delta_table_files", BRONZE.path)] == 1
    assert got[("delta_table_read_errors_total", BRONZE.path)] == 1


def test_lake_tables_cover_every_layer_of_every_entity() -> None:
    tables = lake_tables()
    paths = [table.path for table in tables]

    assert len(paths) == len(set(paths))
    assert {table.layer for table in tables} == {"bronze", "silver", "gold", "quarantine"}
    assert "bronze/finance/transactions" in paths
    assert "quarantine/landing/finance/transactions" in paths
    assert "quarantine/curation/finance/transactions" in paths
