"""`MicroBatcher`: concurrent submissions share writes, results go back in order."""

from __future__ import annotations

import asyncio

import pytest

from fastapi_app.app.core.batching import MicroBatcher


def test_concurrent_submissions_are_grouped_and_answered_in_order() -> None:
    writes: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        writes.append(items)
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    async def scenario() -> list[list[int]]:
        batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_items=100, workers=1, name="t")
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([i, i + 1]) for i in range(0, 20, 2)))
        finally:
            await batcher.close()

    results = asyncio.run(scenario())
    assert results == [[i * 10, (i + 1) * 10] for i in range(0, 20, 2)]
    assert len(writes) < 10  # grouped: fewer writes than submissions
    assert sorted(x for w in writes for x in w) == list(range(20))


def test_max_items_bounds_a_group() -> None:
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    async def scenario() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_items=4, workers=1, name="t")
        batcher.start()
        try:
            await asyncio.gather(*(batcher.submit([i]) for i in range(10)))
        finally:
            await batcher.close()

    asyncio.run(scenario())
    assert max(sizes) <= 4
    assert sum(sizes) == 10


def test_a_failed_write_fails_every_submitter_of_its_group() -> None:
    async def flush(items: list[int]) -> list[int]:
        raise ConnectionError("database gone")

    async def scenario() -> list[BaseException | list[int]]:
        batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_items=10, workers=1, name="t")
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit([i]) for i in range(3)), return_exceptions=True
            )
        finally:
            await batcher.close()

    results = asyncio.run(scenario())
    assert all(isinstance(r, ConnectionError) for r in results)


def test_submitter_that_gave_up_is_skipped() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        await asyncio.sleep(0.05)
        return items

    async def scenario() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_items=10, workers=1, name="t")
        batcher.start()
        try:
            first = asyncio.create_task(batcher.submit([1]))
            await asyncio.sleep(0)  # the worker takes [1] and starts writing
            late = asyncio.create_task(batcher.submit([2]))
            await asyncio.sleep(0)
            late.cancel()
            assert await first == [1]
            with pytest.raises(asyncio.CancelledError):
                await late
            assert await batcher.submit([3]) == [3]
        finally:
            await batcher.close()

    asyncio.run(scenario())
    assert [2] not in flushed
