"""Retention of the ingest bookkeeping: what `dataplatform db prune` deletes.

Idempotency-Key bindings, exported outbox rows, landing's progress and the reasons of
quarantined records are bookkeeping. The records themselves are in Kafka and bronze. Left alone,
these tables grow with every request or micro-batch. Pruning keeps a window:
- a retry within the window still gets its original receipts;
- after the window, an exact resend is accepted again as a new record. Curation MERGEs on
  the record key, so silver still holds one row;
- `GET /ingest/{id}` of a pruned outbox row answers `landed` with `details_expired`.

Outbox rows not yet exported are never pruned, nor the newest progress row of a partition (it
says that every offset below it has landed) or of a bronze table's curation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from dataplatform.db.migrate import search_path

#: (table, DELETE statement taking the cutoff): only rows whose work is done.
PRUNABLE: tuple[tuple[str, str], ...] = (
    ("idempotency_keys", "DELETE FROM idempotency_keys WHERE created_at < %s"),
    ("outbox", "DELETE FROM outbox WHERE exported_at IS NOT NULL AND exported_at < %s"),
    (
        "landing_progress",
        "DELETE FROM landing_progress p WHERE p.landed_at < %s AND EXISTS ("
        " SELECT 1 FROM landing_progress n WHERE n.topic_id = p.topic_id"
        " AND n.kafka_partition = p.kafka_partition AND n.end_offset > p.end_offset)",
    ),
    ("quarantined_records", "DELETE FROM quarantined_records WHERE quarantined_at < %s"),
    (
        "curation_progress",
        "DELETE FROM curation_progress p WHERE p.curated_at < %s AND EXISTS ("
        " SELECT 1 FROM curation_progress n WHERE n.bronze_table = p.bronze_table"
        " AND n.bronze_version > p.bronze_version)",
    ),
)


def prune(
    conninfo: str,
    schema: str,
    *,
    keep: timedelta,
    idempotency_ttl: timedelta,
    dry_run: bool = False,
) -> dict[str, int]:
    """Delete bookkeeping rows older than `keep`, in one transaction.

    Args:
        conninfo: The Postgres connection string.
        schema: The ingest schema (`INGEST_DB_SCHEMA`).
        keep: The retention window.
        idempotency_ttl: How long the ingestor honours an Idempotency-Key
            (`INGESTOR_IDEMPOTENCY_TTL_H`); a binding is never deleted before that.
        dry_run: Count what would go, then roll back.

    Returns:
        Rows deleted (or that would be) per table.
    """
    now = datetime.now(UTC)
    cutoffs = {"idempotency_keys": now - max(keep, idempotency_ttl)}
    with psycopg.connect(conninfo) as conn:
        conn.execute(search_path(schema))
        counts = {
            table: conn.execute(statement, (cutoffs.get(table, now - keep),)).rowcount
            for table, statement in PRUNABLE
        }
        if dry_run:
            conn.rollback()
    return counts
