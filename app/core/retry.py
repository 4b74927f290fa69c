"""Retrying a unit of work that lost a race: one loop for every write path that needs it.

A deadlock victim, a lock-wait timeout or a clash on a unique number is not an error of the
caller: the same work, run again a moment later, usually succeeds. The delay grows and is
jittered so that the racers do not meet again at the same instant.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Retryable(Exception):
    """The work lost a race with another transaction; running it again may succeed."""


async def retrying(work: Callable[[], Awaitable[T]], *, give_up: Callable[[], Exception], attempts: int = 4,
                   delay: float = 0.005) -> T:
    """`await work()`, again after a jittered, doubling pause each time it raises `Retryable`;
    after `attempts` tries, `give_up()` is raised instead."""
    for attempt in range(attempts):
        try:
            return await work()
        except Retryable:
            if attempt == attempts - 1:
                raise give_up() from None
            if delay:
                await asyncio.sleep(delay * (2 ** attempt) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")
