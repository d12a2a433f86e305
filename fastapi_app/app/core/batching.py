"""Group concurrent small writes into one statement.

Each request submits its rows and awaits their results; a few worker tasks take whatever has
queued up (up to `max_items` rows), write it in one round trip and hand the results back. Under
load the groups grow by themselves, so one Postgres commit serves many requests (group commit)
and the per-statement cost of Python and the driver is paid once per group, not per request. At
low load a group is one request and no time is spent waiting for company.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Run `flush(items) -> results` over the concatenated items of concurrent submitters.

    `flush` must return one result per item, in order.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_items: int,
        workers: int,
        name: str,
    ) -> None:
        """Set up; call `start()` inside the running event loop."""
        self._flush = flush
        self._max_items = max_items
        self._workers = workers
        self._name = name
        self._queue: asyncio.Queue[tuple[Sequence[T], asyncio.Future[list[R]]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the worker tasks."""
        self._tasks = [
            asyncio.create_task(self._run(), name=f"{self._name}-{i}") for i in range(self._workers)
        ]

    async def close(self) -> None:
        """Stop the workers; submissions still queued fail with `CancelledError`."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            future.cancel()

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Queue `items` and wait for their results (in order)."""
        if not items:
            return []
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((items, future))
        return await future

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            count = len(group[0][0])
            while count < self._max_items and not self._queue.empty():
                nxt = self._queue.get_nowait()
                group.append(nxt)
                count += len(nxt[0])
            # Submitters that gave up (timeout, disconnect) are left out of the write.
            group = [(items, future) for items, future in group if not future.done()]
            if not group:
                continue
            flat = [item for items, _ in group for item in items]
            try:
                results = await self._flush(flat)
            except asyncio.CancelledError:
                for _, future in group:
                    future.cancel()
                raise
            except Exception as exc:
                log.warning("%s: write of %d rows failed: %s", self._name, len(flat), exc)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            offset = 0
            for items, future in group:
                if not future.done():
                    future.set_result(results[offset : offset + len(items)])
                offset += len(items)
