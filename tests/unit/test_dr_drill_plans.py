"""Pure parts of the PostgreSQL and Delta drills: the content fingerprint and the reports."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from dataplatform.dr_drills import (
    DeltaDrillReport,
    Fingerprint,
    PostgresDrillReport,
    RestoredDatabase,
    fingerprint,
)


def _rows() -> list[dict[str, object]]:
    at = datetime(2026, 1, 15, 10, tzinfo=UTC)
    return [
        {"transaction_id": "T-1", "amount": Decimal("10.00"), "event_time": at},
        {"transaction_id": "T-2", "amount": Decimal("20.50"), "event_time": at},
    ]


def test_fingerprint_ignores_row_order() -> None:
    rows = _rows()
    assert fingerprint(rows, "transaction_id") == fingerprint(rows[::-1], "transaction_id")
    assert fingerprint(rows, "transaction_id").rows == 2


def test_fingerprint_changes_with_any_value() -> None:
    rows = _rows()
    changed = [rows[0], {**rows[1], "amount": Decimal("20.51")}]
    assert fingerprint(rows, "transaction_id") != fingerprint(changed, "transaction_id")
    assert fingerprint(rows, "transaction_id") != fingerprint(rows[:1], "transaction_id")


def test_postgres_report_states_rpo_rto_and_checks() -> None:
    report = PostgresDrillReport(
        backup_uri="s3://lakehouse/_backups/postgres/2026-11-30/",
        marks_before_backup=50,
        marks_after_backup=50,
        marks_restored=50,
        rpo_window_s=2.9,
        rto_s=14.3,
        restored=[RestoredDatabase("airflow", "drill_x_airflow", 58, 524, 58)],
    )
    report.steps.append(("dataplatform backup postgres", 7.3))
    text = "\n".join(report.lines())
    assert "7.3 s  dataplatform backup postgres" in text
    assert "58 tables, 524 rows; row counts and 58 table checksums" in text
    assert "RPO: 2.9 s" in text and "50 marker rows written in it" in text
    assert "RTO: 14.3 s" in text


def test_delta_report_states_versions_and_rto() -> None:
    report = DeltaDrillReport(
        table="drills/delta/x/silver/finance/transactions",
        good_version=1,
        damaged_version=3,
        restored_version=4,
        good=Fingerprint(1000, "ab" * 32),
        damaged=Fingerprint(1250, "cd" * 32),
        rto_s=12.5,
    )
    text = "\n".join(report.lines())
    assert "last good version 1: 1000 rows" in text
    assert "restored as version 4" in text
    assert "RTO: 12.5 s" in text
