"""A short cache of landing's progress per Kafka partition, in front of `GET /ingest/{id}`.

The same cache serves curation's progress: its reports per bronze table (with partition 0)
say that every version below `end_offset` (the version processed, plus one) is curated.

A client polling its receipts until they land, or one checking the 500 receipts of a batch,
asks about many offsets of a few partitions within a second. A partition's progress changes
once per landing micro-batch, so one snapshot of its latest reports, at most `ttl_s` old,
answers all of them: a burst of polls costs one query per partition per `ttl_s`, and polls
that arrive while that query runs wait for it instead of sending their own.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

#: How old a partition's snapshot may be: a record reported landed is seen so at most this late.
TTL_S = 1.0
#: Partitions kept (least recently asked dropped first): bounds the memory of the cache.
MAX_PARTITIONS = 1024
#: Latest progress reports fetched per partition: landing reports once per micro-batch, so
#: this covers the recent records that get polled; an older offset is looked up on its own.
WINDOW = 256


@dataclass(frozen=True, slots=True)
class ProgressRow:
    """One progress report: offsets below `end_offset` had landed at `landed_at`, appended to
    `bronze_table` at `bronze_version` (or earlier; None: the version is a later report's)."""

    end_offset: int
    entity: str
    landed_at: datetime
    bronze_table: str | None = None
    bronze_version: int | None = None


@dataclass(frozen=True, slots=True)
class Landing:
    """Where an offset is: landed (with the report that covered it first) or not yet, and the
    bronze version that holds it (or a later one), when a report names it."""

    entity: str | None = None
    landed_at: datetime | None = None
    bronze_table: str | None = None
    bronze_version: int | None = None


#: Reads a partition's latest reports: (topic id, partition, how many) -> rows, any order.
Fetch = Callable[[str, int, int], Awaitable[Sequence[ProgressRow]]]


class _Snapshot:
    __slots__ = ("complete", "ends", "fetched_at", "rows")

    def __init__(self, rows: Sequence[ProgressRow], *, fetched_at: float, complete: bool) -> None:
        self.rows = sorted(rows, key=lambda row: row.end_offset)
        self.ends = [row.end_offset for row in self.rows]
        self.fetched_at = fetched_at
        #: Every report of the partition is here (fewer than asked for).
        self.complete = complete

    def landing(self, offset: int) -> Landing | None:
        """The first report past `offset`; None when it may be older than the snapshot."""
        if not self.complete and offset < self.ends[0]:
            return None
        index = bisect_right(self.ends, offset)
        if index == len(self.rows):
            return Landing()
        row = self.rows[index]
        # A replayed batch names no version: the next report's is later, so never too early.
        named = next((r for r in self.rows[index:] if r.bronze_version is not None), row)
        return Landing(row.entity, row.landed_at, named.bronze_table, named.bronze_version)


class ProgressCache:
    """Landing's progress per partition, each snapshot reused for `ttl_s` seconds."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_s: float = TTL_S,
        max_partitions: int = MAX_PARTITIONS,
        window: int = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read partitions with `fetch`; keep at most `max_partitions` of them."""
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._max_partitions = max_partitions
        self._window = window
        self._clock = clock
        self._snapshots: OrderedDict[tuple[str, int], _Snapshot] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[_Snapshot]] = {}

    async def landing(self, topic_id: str, partition: int, offset: int) -> Landing | None:
        """Where `offset` of the partition is; None when it is older than the snapshot holds
        (look it up on its own).

        Raises:
            Exception: What `fetch` raised (nothing is cached then).
        """
        key = (topic_id, partition)
        snapshot = self._snapshots.get(key)
        if snapshot is None or self._clock() - snapshot.fetched_at >= self._ttl_s:
            snapshot = await self._load(key)
        else:
            self._snapshots.move_to_end(key)
        return snapshot.landing(offset)

    async def _load(self, key: tuple[str, int]) -> _Snapshot:
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._read(key))
            self._loading[key] = loading
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        # Shielded: one poll giving up (a disconnect) must not cancel the others' query.
        return await asyncio.shield(loading)

    async def _read(self, key: tuple[str, int]) -> _Snapshot:
        # Aged from before the query: what it returns is at least this old.
        started = self._clock()
        rows = await self._fetch(key[0], key[1], self._window)
        snapshot = _Snapshot(rows, fetched_at=started, complete=len(rows) < self._window)
        self._snapshots[key] = snapshot
        self._snapshots.move_to_end(key)
        while len(self._snapshots) > self._max_partitions:
            self._snapshots.popitem(last=False)
        return snapshot
