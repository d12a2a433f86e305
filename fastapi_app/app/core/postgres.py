"""Postgres implementations: the ingest store (every track) and the outbox publisher (starter).

The store writes nothing per record: only an `Idempotency-Key` binding per keyed request. Its
connections commit with `synchronous_commit = off`: a binding lost in a crash only lets a retry
publish again (the at-least-once window of docs/API.md). The outbox publisher groups the rows of
concurrent requests into one statement (`MicroBatcher`) and commits synchronously: its commit
*is* the durability of the starter track, and it also flushes every earlier asynchronous commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import orjson
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from dataplatform.db.migrate import search_path
from dataplatform.ingest_ids import KafkaPlace, OutboxPlace
from dataplatform.settings import IngestorSettings, PostgresSettings
from fastapi_app.app.core.batching import MicroBatcher
from fastapi_app.app.core.progress_cache import ProgressCache, ProgressRow
from fastapi_app.app.core.publisher import SinkUnavailable
from fastapi_app.app.core.store import (
    Candidate,
    IdempotencyClaim,
    KeyBinding,
    Placement,
    QuarantiningJob,
    Receipt,
    SinkName,
    StoredApiKey,
    Whereabouts,
    entity_label,
    receipt_from_json,
    receipt_to_json,
)
from fastapi_app.app.core.telemetry import SINK_LATENCY

# Rows travel as one JSON parameter (`json_to_recordset`), not as one array per column: orjson
# encodes a group of 500 rows in C in well under a millisecond, where psycopg's array dumper
# (pure Python, per element) took ~40% of the ingestor's CPU on 500-record batches.

# The first progress report of landing past the offset: when the record reached bronze (or
# quarantine); the first such report naming a bronze version (a replayed batch names none); and
# the quarantine row if landing or curation refused the record.
_KAFKA_WHEREABOUTS = """
SELECT p.entity, p.landed_at, v.bronze_table, v.bronze_version, q.reason, q.job, q.quarantined_at
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT entity, landed_at FROM landing_progress
    WHERE topic_id = %(topic_id)s AND kafka_partition = %(partition)s AND end_offset > %(offset)s
    ORDER BY end_offset LIMIT 1
) AS p ON true
LEFT JOIN LATERAL (
    SELECT bronze_table, bronze_version FROM landing_progress
    WHERE topic_id = %(topic_id)s AND kafka_partition = %(partition)s AND end_offset > %(offset)s
      AND bronze_version IS NOT NULL
    ORDER BY end_offset LIMIT 1
) AS v ON true
LEFT JOIN quarantined_records q ON q.ingest_id = %(ingest_id)s
"""

# A partition's latest progress reports (`ProgressCache`), newest first, by the primary key.
_PARTITION_PROGRESS = """
SELECT end_offset, entity, landed_at, bronze_table, bronze_version FROM landing_progress
WHERE topic_id = %s AND kafka_partition = %s
ORDER BY end_offset DESC LIMIT %s
"""

# A bronze table's latest curation reports as `ProgressCache` rows (versions below the end are
# curated), newest first, by the primary key.
_CURATION_PROGRESS = """
SELECT bronze_version + 1, entity, curated_at FROM curation_progress
WHERE bronze_table = %s
ORDER BY bronze_version DESC LIMIT %s
"""

# The first curation run that processed the version (when older than the cached reports).
_CURATED_AT = """
SELECT curated_at FROM curation_progress
WHERE bronze_table = %s AND bronze_version >= %s
ORDER BY bronze_version LIMIT 1
"""

_QUARANTINE_REASON = (
    "SELECT reason, job, quarantined_at FROM quarantined_records WHERE ingest_id = %s"
)

_OUTBOX_WHEREABOUTS = """
SELECT o.entity, o.record_key, o.ingested_at, o.exported_at, o.delta_version, o.bronze_table,
    q.reason, q.job, q.quarantined_at
FROM outbox o LEFT JOIN quarantined_records q ON q.ingest_id = %s
WHERE o.id = %s
"""

# Binds the key, or takes over a binding that expired: a complete one after the TTL, one left
# in progress (a crash between publish and complete) after twice the sink timeout.
_CLAIM_KEY = """
INSERT INTO idempotency_keys (principal, idempotency_key, route, request_sha256, state)
VALUES (%(principal)s, %(key)s, %(route)s, %(sha)s, 'in_progress')
ON CONFLICT (principal, idempotency_key) DO UPDATE
    SET route = EXCLUDED.route, request_sha256 = EXCLUDED.request_sha256,
        state = 'in_progress', receipts = NULL, created_at = now()
    WHERE (idempotency_keys.state = 'complete'
           AND idempotency_keys.created_at < now() - make_interval(secs => %(ttl_s)s))
       OR (idempotency_keys.state = 'in_progress'
           AND idempotency_keys.created_at < now() - make_interval(secs => %(stale_s)s))
RETURNING 1
"""

_BOUND_KEY = """
SELECT route, request_sha256, state, receipts FROM idempotency_keys
WHERE principal = %s AND idempotency_key = %s
"""

_COMPLETE_KEY = """
UPDATE idempotency_keys SET state = 'complete', receipts = %s::jsonb
WHERE principal = %s AND idempotency_key = %s AND state = 'in_progress'
"""

# Back in progress with the receipts kept: `complete` restores them if publishing again fails.
_REOPEN_KEY = """
UPDATE idempotency_keys SET state = 'in_progress', created_at = now()
WHERE principal = %s AND idempotency_key = %s AND state = 'complete'
RETURNING 1
"""

# Per place, in order: whether landing passed its offset, or a Kafka restore brought it back.
_KEPT = """
SELECT EXISTS (
        SELECT 1 FROM landing_progress p
        WHERE p.topic_id = t.topic_id AND p.kafka_partition = t.part AND p.end_offset > t.off
    ) OR EXISTS (
        SELECT 1 FROM kafka_restores r
        WHERE r.topic_id = t.topic_id AND r.kafka_partition = t.part
          AND t.off >= r.first_offset AND t.off < r.end_offset
    )
FROM ROWS FROM (json_to_recordset(%s::json) AS (topic_id text, part integer, off bigint))
    WITH ORDINALITY AS t(topic_id, part, off, n)
ORDER BY t.n
"""

_RELEASE_KEY = """
DELETE FROM idempotency_keys
WHERE principal = %s AND idempotency_key = %s AND state = 'in_progress'
"""

# Rows are inserted in request order (WITH ORDINALITY): the outbox id orders the versions of a
# key downstream, so two versions of one key in one batch keep the order they were sent in.
_INSERT_OUTBOX = """
INSERT INTO outbox (entity, record_key, payload, principal)
SELECT t.e, t.k, t.p, t.a
FROM ROWS FROM (json_to_recordset(%s::json) AS (e text, k text, p text, a text))
    WITH ORDINALITY AS t(e, k, p, a, n)
ORDER BY t.n
RETURNING id, ingested_at
"""


def _pool(
    postgres: PostgresSettings,
    settings: IngestorSettings,
    *,
    synchronous_commit: bool,
    name: str,
    check: bool = False,
) -> AsyncConnectionPool[AsyncConnection]:
    """A pool on the ingest schema; with `check`, each connection is tested as it is taken
    (one round trip), so a PostgreSQL restart costs no request a dead connection."""

    async def configure(conn: AsyncConnection) -> None:
        await conn.execute(search_path(settings.db_schema))
        await conn.execute(
            "SELECT set_config('synchronous_commit', %s, false),"
            " set_config('statement_timeout', %s, false)",
            ("on" if synchronous_commit else "off", str(int(settings.sink_timeout_s * 1000))),
        )
        await conn.commit()

    return AsyncConnectionPool(
        postgres.conninfo(),
        min_size=1,
        max_size=settings.db_pool_max,
        open=False,
        configure=configure,
        timeout=settings.sink_timeout_s,
        name=name,
        check=AsyncConnectionPool.check_connection if check else None,
    )


class PostgresStore:
    """`IngestStore` on the ingest schema."""

    def __init__(self, postgres: PostgresSettings, settings: IngestorSettings) -> None:
        """Configure; `start()` connects."""
        self._settings = settings
        # Checked: the store is used rarely (keyed requests, receipts, key reloads), and after a
        # PostgreSQL restart a dead connection made a new key's first request a 503.
        self._pool = _pool(
            postgres, settings, synchronous_commit=False, name="ingest-store", check=True
        )
        self._progress = ProgressCache(self._partition_progress)
        self._curation = ProgressCache(self._curation_progress)

    async def start(self) -> None:
        """Open the pool (without waiting: a down database must not stop the API starting)."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def ping(self) -> None:
        """`SELECT 1` through the pool."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def whereabouts(self, place: KafkaPlace | OutboxPlace, ingest_id: str) -> Whereabouts:
        """See `IngestStore.whereabouts`; through the progress caches, and curated once a
        curation run processed the bronze version that holds the record (not one landing or
        curation quarantined)."""
        found = await self._landed(place, ingest_id)
        if found.bronze_table is None or found.bronze_version is None or found.quarantined_by:
            return found
        curated = await self._curation.landing(found.bronze_table, 0, found.bronze_version)
        if curated is None:  # older than the cached reports: the version's own lookup
            async with self._pool.connection() as conn:
                cur = await conn.execute(_CURATED_AT, (found.bronze_table, found.bronze_version))
                row = await cur.fetchone()
            curated_at = None if row is None else row[0]
        else:
            curated_at = curated.landed_at
        return replace(found, curated_at=curated_at)

    async def _landed(self, place: KafkaPlace | OutboxPlace, ingest_id: str) -> Whereabouts:
        """What the outbox row or landing's progress says of the record."""
        if isinstance(place, OutboxPlace):
            async with self._pool.connection() as conn:
                cur = await conn.execute(_OUTBOX_WHEREABOUTS, (ingest_id, place.outbox_id))
                row = await cur.fetchone()
            if row is None:  # pruned after it was exported (never before)
                return Whereabouts(details_expired=True)
            entity, record_key, received_at, landed_at, version, table, *refused = row
            found = Whereabouts(
                entity=entity,
                record_key=record_key,
                received_at=received_at,
                landed_at=landed_at,
                bronze_table=table,
                bronze_version=version,
            )
            return _with_quarantine(found, *refused)
        landing = await self._progress.landing(place.topic_id, place.partition, place.offset)
        if landing is not None and landing.landed_at is None:
            return Whereabouts()
        async with self._pool.connection() as conn:
            if landing is not None:
                # Landing records the quarantined ids before the progress that covers them.
                cur = await conn.execute(_QUARANTINE_REASON, (ingest_id,))
                quarantine = await cur.fetchone()
                found = Whereabouts(
                    entity=landing.entity,
                    landed_at=landing.landed_at,
                    bronze_table=landing.bronze_table,
                    bronze_version=landing.bronze_version,
                )
                return found if quarantine is None else _with_quarantine(found, *quarantine)
            # Older than the cached reports: the record's own lookup.
            cur = await conn.execute(
                _KAFKA_WHEREABOUTS,
                {
                    "topic_id": place.topic_id,
                    "partition": place.partition,
                    "offset": place.offset,
                    "ingest_id": ingest_id,
                },
            )
            row = await cur.fetchone()
        assert row is not None  # the query always returns its one row
        entity, landed_at, table, version, *refused = row
        found = Whereabouts(
            entity=entity, landed_at=landed_at, bronze_table=table, bronze_version=version
        )
        return _with_quarantine(found, *refused)

    async def _partition_progress(
        self, topic_id: str, partition: int, limit: int
    ) -> list[ProgressRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_PARTITION_PROGRESS, (topic_id, partition, limit))
            rows = await cur.fetchall()
        return [ProgressRow(*row) for row in rows]

    async def _curation_progress(self, bronze_table: str, _: int, limit: int) -> list[ProgressRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CURATION_PROGRESS, (bronze_table, limit))
            rows = await cur.fetchall()
        return [ProgressRow(*row) for row in rows]

    async def claim_idempotency_key(
        self, *, principal: str, key: str, route: str, request_sha256: bytes
    ) -> IdempotencyClaim:
        """See `IngestStore.claim_idempotency_key`."""
        params = {
            "principal": principal,
            "key": key,
            "route": route,
            "sha": request_sha256,
            "ttl_s": self._settings.idempotency_ttl_h * 3600,
            "stale_s": 2 * self._settings.sink_timeout_s,
        }
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLAIM_KEY, params)
            if await cur.fetchone() is not None:
                return IdempotencyClaim("claimed")
            cur = await conn.execute(_BOUND_KEY, (principal, key))
            row = await cur.fetchone()
        if row is None:  # deleted between the two statements: the caller may retry
            return IdempotencyClaim("in_progress")
        bound_route, bound_sha, state, receipts = row
        if bound_route != route or bytes(bound_sha) != request_sha256:
            return IdempotencyClaim("conflict")
        if state != "complete":
            return IdempotencyClaim("in_progress")
        return IdempotencyClaim("replay", tuple(receipt_from_json(r) for r in receipts))

    async def complete_idempotency_key(
        self, *, principal: str, key: str, receipts: list[Receipt]
    ) -> None:
        """See `IngestStore.complete_idempotency_key`."""
        stored = orjson.dumps([receipt_to_json(r) for r in receipts]).decode()
        async with self._pool.connection() as conn:
            await conn.execute(_COMPLETE_KEY, (stored, principal, key))

    async def release_idempotency_key(self, *, principal: str, key: str) -> None:
        """See `IngestStore.release_idempotency_key`."""
        async with self._pool.connection() as conn:
            await conn.execute(_RELEASE_KEY, (principal, key))

    async def reopen_idempotency_key(self, *, principal: str, key: str) -> bool:
        """See `IngestStore.reopen_idempotency_key`."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_REOPEN_KEY, (principal, key))
            return await cur.fetchone() is not None

    async def vanished(self, places: list[KafkaPlace]) -> list[bool]:
        """See `IngestStore.vanished`."""
        rows = [{"topic_id": p.topic_id, "part": p.partition, "off": p.offset} for p in places]
        async with self._pool.connection() as conn:
            cur = await conn.execute(_KEPT, (orjson.dumps(rows).decode(),))
            kept = await cur.fetchall()
        return [not row[0] for row in kept]

    async def list_api_keys(self) -> list[StoredApiKey]:
        """See `IngestStore.list_api_keys`."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT key_id, secret_sha256, rate_limit_per_s, revoked_at IS NOT NULL"
                " FROM api_keys"
            )
            rows = await cur.fetchall()
        return [StoredApiKey(row[0], bytes(row[1]), row[2], row[3]) for row in rows]


def _with_quarantine(
    found: Whereabouts, reason: str | None, job: str | None, at: datetime | None
) -> Whereabouts:
    """`found` with the record's `quarantined_records` row (`reason`, `job`, `at`; all None
    without one). Curation records the records it quarantined in the transaction of its
    progress report: such a record's curation ended at `at`, in quarantine, not in silver."""
    if reason is None:
        return found
    by: QuarantiningJob = "curation" if job == "curation" else "landing"
    return replace(
        found,
        quarantine_reason=reason,
        quarantined_by=by,
        curated_at=at if by == "curation" else None,
    )


class OutboxPublisher:
    """`Publisher` for the starter track: the transactional outbox in Postgres."""

    sink: SinkName = "postgres"

    def __init__(self, postgres: PostgresSettings, settings: IngestorSettings) -> None:
        """Configure; `start()` connects."""
        self._pool = _pool(postgres, settings, synchronous_commit=True, name="outbox")
        self._writer: MicroBatcher[tuple[Candidate, str], Placement] = MicroBatcher(
            self._insert_rows, max_items=settings.db_batch_max_rows, workers=2, name="outbox"
        )

    async def start(self) -> None:
        """Open the pool without waiting for the database."""
        await self._pool.open(wait=False)
        self._writer.start()

    async def close(self) -> None:
        """Stop the writer and close the pool."""
        await self._writer.close()
        await self._pool.close()

    async def ping(self) -> None:
        """`SELECT 1` through the pool."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")

    def entity_of(self, topic_id: str) -> str | None:
        """No topics here: the outbox row names its entity."""
        return None

    async def current_topic_id(self, topic: str) -> str | None:
        """No topics here."""
        return None

    async def publish(
        self, records: list[Candidate], *, key_id: str, traceparent: str
    ) -> list[Placement]:
        """Insert outbox rows; they are durable once the commit returns."""
        return await self._writer.submit([(cand, key_id) for cand in records])

    async def publish_bound(
        self,
        records: list[Candidate],
        *,
        key_id: str,
        binding: KeyBinding,
        receipts_of: Callable[[list[Placement]], list[Receipt]],
    ) -> list[Receipt]:
        """See `BindingPublisher.publish_bound` (one transaction, not grouped with others)."""
        started = time.perf_counter()
        async with self._pool.connection() as conn:
            placements = await _insert(conn, [(cand, key_id) for cand in records])
            receipts = receipts_of(placements)
            stored = orjson.dumps([receipt_to_json(r) for r in receipts]).decode()
            cur = await conn.execute(_COMPLETE_KEY, (stored, binding.principal, binding.key))
            if cur.rowcount != 1:
                # The binding expired and another request took the key over: write nothing.
                await conn.rollback()
                raise SinkUnavailable("the Idempotency-Key binding was taken over; retry")
        SINK_LATENCY.labels("postgres", "publish").observe(time.perf_counter() - started)
        return receipts

    async def _insert_rows(self, records: list[tuple[Candidate, str]]) -> list[Placement]:
        started = time.perf_counter()
        async with self._pool.connection() as conn:
            placements = await _insert(conn, records)
        SINK_LATENCY.labels("postgres", "publish").observe(time.perf_counter() - started)
        return placements


async def _insert(conn: AsyncConnection, records: list[tuple[Candidate, str]]) -> list[Placement]:
    """Insert outbox rows (uncommitted: the pool commits when the connection is returned)."""
    outbox = [
        {"e": entity_label(c.entity), "k": c.record_key, "p": c.payload.decode(), "a": key_id}
        for c, key_id in records
    ]
    cur = await conn.execute(_INSERT_OUTBOX, (orjson.dumps(outbox).decode(),))
    # Ids are drawn in insertion order, which is request order (ORDER BY t.n).
    rows = sorted(await cur.fetchall())
    return [Placement(OutboxPlace(outbox_id), committed_at) for outbox_id, committed_at in rows]
