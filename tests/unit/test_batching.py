"""Smart batching (app.core.batching): what arrives while a batch is out goes in the next one, each
caller gets its own result, a failed batch fails only its own callers."""
from __future__ import annotations

import asyncio

import pytest

from app.core.batching import Batcher


class Recorder:
    """A `run` that records its batches and holds each one until released."""

    def __init__(self, fail_on: str | None = None):
        self.batches: list[list[str]] = []
        self.running = self.most_running = 0
        self.gate = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(items)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.fail_on in items:
                raise RuntimeError(f"batch with {self.fail_on} failed")
            return [item.upper() for item in items]
        finally:
            self.running -= 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_request_goes_at_once_and_gets_its_own_answer():
    run = Recorder()
    run.gate.set()
    batcher = Batcher(run, width=2)
    assert await asyncio.wait_for(batcher.submit("a"), 1) == "A"
    assert run.batches == [["a"]]


async def test_what_arrives_while_batches_are_out_goes_together_in_order():
    run = Recorder()
    batcher = Batcher(run, width=1)
    first = asyncio.ensure_future(batcher.submit("a"))
    await settle()
    rest = [asyncio.ensure_future(batcher.submit(x)) for x in "bcde"]
    await settle()
    assert run.batches == [["a"]]  # b..e wait: the one batch allowed is out
    run.gate.set()
    assert await first == "A"
    assert await asyncio.gather(*rest) == ["B", "C", "D", "E"]
    assert run.batches == [["a"], ["b", "c", "d", "e"]]


async def test_width_and_size_bound_the_batches():
    run = Recorder()
    batcher = Batcher(run, width=2, size=3)
    waiting = [asyncio.ensure_future(batcher.submit(str(i))) for i in range(8)]
    await settle()
    run.gate.set()
    assert await asyncio.gather(*waiting) == [str(i) for i in range(8)]
    assert run.most_running == 2
    assert max(len(b) for b in run.batches) == 3
    assert sorted(i for b in run.batches for i in b) == [str(i) for i in range(8)]


async def test_a_failed_batch_fails_its_own_callers_only():
    run = Recorder(fail_on="b")
    batcher = Batcher(run, width=1)
    first = asyncio.ensure_future(batcher.submit("a"))
    await settle()
    doomed = [asyncio.ensure_future(batcher.submit(x)) for x in "bc"]
    await settle()
    run.gate.set()
    assert await first == "A"
    for task in doomed:
        with pytest.raises(RuntimeError, match="batch with b failed"):
            await task
    assert await asyncio.wait_for(batcher.submit("d"), 1) == "D"  # the batcher still works


async def test_a_caller_gone_before_its_batch_left_is_not_sent():
    run = Recorder()
    batcher = Batcher(run, width=1)
    first = asyncio.ensure_future(batcher.submit("a"))
    await settle()
    gone = asyncio.ensure_future(batcher.submit("b"))
    kept = asyncio.ensure_future(batcher.submit("c"))
    await settle()
    gone.cancel()
    run.gate.set()
    assert (await first, await kept) == ("A", "C")
    assert run.batches == [["a"], ["c"]]
