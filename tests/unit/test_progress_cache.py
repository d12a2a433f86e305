"""`ProgressCache`: a burst of receipt polls costs one progress query per partition per TTL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from fastapi_app.app.core.progress_cache import Landing, ProgressCache, ProgressRow

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ENTITY = "finance.transactions"


def _rows(*ends: int) -> list[ProgressRow]:
    return [ProgressRow(end, ENTITY, T0 + timedelta(seconds=end)) for end in ends]


class _Progress:
    """The reports of each partition, newest first as the query returns them; counts reads."""

    def __init__(self) -> None:
        self.reports: dict[tuple[str, int], list[ProgressRow]] = {}
        self.reads: list[tuple[str, int]] = []
        self.pause = 0.0
        self.fail = False

    async def fetch(self, topic_id: str, partition: int, limit: int) -> Sequence[ProgressRow]:
        self.reads.append((topic_id, partition))
        await asyncio.sleep(self.pause)
        if self.fail:
            raise ConnectionError("store down")
        rows = sorted(self.reports.get((topic_id, partition), []), key=lambda r: -r.end_offset)
        return rows[:limit]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_of_polls_reads_each_partition_once_per_ttl() -> None:
    progress, clock = _Progress(), _Clock()
    progress.reports[("t", 0)] = _rows(10, 20)
    progress.reports[("t", 1)] = _rows(5)
    cache = ProgressCache(progress.fetch, ttl_s=1.0, clock=clock)

    async def burst() -> list[Landing | None]:
        return [await cache.landing("t", offset % 2, offset) for offset in range(40)]

    answers = asyncio.run(burst())
    assert sorted(progress.reads) == [("t", 0), ("t", 1)]
    assert answers[4] == Landing(ENTITY, T0 + timedelta(seconds=10))  # partition 0, < 10
    assert answers[12] == Landing(ENTITY, T0 + timedelta(seconds=20))  # 10 <= offset < 20
    assert answers[20] == Landing()  # partition 0 not there yet
    assert answers[3] == Landing(ENTITY, T0 + timedelta(seconds=5))  # partition 1
    assert answers[7] == Landing()

    # Landing reports again; within the TTL the snapshot still answers, after it a new read.
    progress.reports[("t", 0)] = _rows(10, 20, 30)
    clock.now += 0.5
    assert asyncio.run(cache.landing("t", 0, 25)) == Landing()
    clock.now += 0.6
    assert asyncio.run(cache.landing("t", 0, 25)) == Landing(ENTITY, T0 + timedelta(seconds=30))
    assert progress.reads.count(("t", 0)) == 2


def test_concurrent_polls_share_one_query() -> None:
    progress = _Progress()
    progress.reports[("t", 0)] = _rows(10)
    progress.pause = 0.05
    cache = ProgressCache(progress.fetch)

    async def together() -> list[Landing | None]:
        return list(await asyncio.gather(*(cache.landing("t", 0, n) for n in range(50))))

    answers = asyncio.run(together())
    assert progress.reads == [("t", 0)]
    assert answers[9] == Landing(ENTITY, T0 + timedelta(seconds=10))
    assert answers[10] == Landing()


def test_offset_older_than_full_window_is_left_to_own_lookup() -> None:
    progress = _Progress()
    progress.reports[("t", 0)] = _rows(*range(10, 110, 10))  # 10 reports
    cache = ProgressCache(progress.fetch, window=4)
    # The window holds the reports ending 70..100: offset 65 may have landed in an older one.
    assert asyncio.run(cache.landing("t", 0, 65)) is None
    assert asyncio.run(cache.landing("t", 0, 70)) == Landing(ENTITY, T0 + timedelta(seconds=80))
    # A partition with fewer reports than the window has them all: any offset is answered.
    progress.reports[("t", 1)] = _rows(50)
    assert asyncio.run(cache.landing("t", 1, 0)) == Landing(ENTITY, T0 + timedelta(seconds=50))


def test_cache_keeps_at_most_max_partitions() -> None:
    progress, clock = _Progress(), _Clock()
    cache = ProgressCache(progress.fetch, max_partitions=2, clock=clock)

    async def ask(*partitions: int) -> None:
        for partition in partitions:
            await cache.landing("t", partition, 0)

    asyncio.run(ask(0, 1, 0, 2))  # 1 is the least recently asked when 2 arrives
    asyncio.run(ask(0, 2, 1))
    assert progress.reads == [("t", 0), ("t", 1), ("t", 2), ("t", 1)]


def test_failed_read_is_raised_and_not_cached() -> None:
    progress = _Progress()
    progress.reports[("t", 0)] = _rows(10)
    progress.fail = True
    cache = ProgressCache(progress.fetch)
    with pytest.raises(ConnectionError):
        asyncio.run(cache.landing("t", 0, 1))
    progress.fail = False
    assert asyncio.run(cache.landing("t", 0, 1)) == Landing(ENTITY, T0 + timedelta(seconds=10))
    assert len(progress.reads) == 2


def test_report_without_bronze_version_takes_the_next_named_one() -> None:
    # A replayed batch appended nothing and names no version: the record's version is at most
    # the next report's, never an earlier one.
    progress = _Progress()
    progress.reports[("t", 0)] = [
        ProgressRow(10, ENTITY, T0, "s3://l/b", 4),
        ProgressRow(20, ENTITY, T0, "s3://l/b", None),
        ProgressRow(30, ENTITY, T0, "s3://l/b", 6),
        ProgressRow(40, ENTITY, T0, "s3://l/b", None),
    ]
    cache = ProgressCache(progress.fetch)

    async def ask(offset: int) -> tuple[str | None, int | None]:
        found = await cache.landing("t", 0, offset)
        assert found is not None
        return found.bronze_table, found.bronze_version

    assert asyncio.run(ask(5)) == ("s3://l/b", 4)
    assert asyncio.run(ask(15)) == ("s3://l/b", 6)
    assert asyncio.run(ask(25)) == ("s3://l/b", 6)
    assert asyncio.run(ask(35)) == ("s3://l/b", None)
