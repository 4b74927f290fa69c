"""A task each worker runs beside its requests until shutdown (sweepers, flushers).

One place owns starting and cancelling, so every such task stops the same way at shutdown:
cancelled, then awaited, so nothing it was doing is cut off half-way by the loop closing.
"""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """Subclasses give `name` and `_run()`; the app calls `start()` at startup and `stop()` at shutdown."""

    name = "background"
    task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        raise NotImplementedError
