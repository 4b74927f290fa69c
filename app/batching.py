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

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.queue.append((item, future))
        if self.in_flight < self.width:
            self.in_flight += 1
            asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue[:self.size], self.queue[self.size:]
                try:
                    results = await self.run([item for item, _ in batch])
                except BaseException as exc:  # noqa: BLE001 - every waiter gets the batch's failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.in_flight -= 1
