"""Smart batching: requests that arrive while earlier ones are at the database go together.

Why: under load most of a short write's cost is per statement and per transaction (the round
trip, the CALL, the commit), not per row. A batcher keeps at most `width` batches in flight; what
arrives meanwhile waits for the next one. No timer: an idle server sends a lone request at once,
so batching adds no latency when there is nothing to batch with.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """`submit(item)` → the result `run` gave for it; `run(items)` → results in the same order."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]], width: int = 2, size: int = 64):
        self.run, self.width, self.size = run, width, size
        self.queue: list[tuple[T, asyncio.Future[R]]] = []
        self.in_flight = 0
        self.tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.queue.append((item, future))
        if self.in_flight < self.width:
            self.in_flight += 1
            task = asyncio.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue[:self.size], self.queue[self.size:]
                batch = [(item, future) for item, future in batch if not future.cancelled()]  # caller gone
                if not batch:
                    continue
                try:
                    results = await self.run([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # every waiter of this batch gets its failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.in_flight -= 1
