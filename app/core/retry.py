"""Retrying a unit of work that lost a race: one loop for every write path that needs it.

A deadlock victim, a lock-wait timeout (a Galera certification failure arrives as a deadlock,
1213, at COMMIT) or a clash on a unique number is not an error of the caller: the same work, run
again a moment later, usually succeeds. The delay grows and is jittered so that the racers do not
meet again at the same instant. Each retry and each give-up is counted by write path
(`pipeline_db_conflict_retries_total`, `pipeline_db_conflict_give_ups_total`): a path that keeps
giving up is a hot row to look at, not noise.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
# MariaDB/MySQL deadlock and lock-wait timeout; PostgreSQL serialization failure and deadlock
CONFLICT_CODES = frozenset({1213, 1205, "40001", "40P01"})
# How long an operator's write (a form, a session, a grant) may keep retrying before its 503.
WRITE_BUDGET = 3.0
RETRIES = Counter("pipeline_db_conflict_retries_total",
                  "Transactions run again after a conflict (deadlock, lock wait, certification)", ["path"])
GIVE_UPS = Counter("pipeline_db_conflict_give_ups_total",
                   "Conflicts that outlasted their retries: answered 503 busy with Retry-After", ["path"])
# the write paths, shown at 0 from the start (a scraper sees a path before its first conflict)
PATHS = ("admission", "finish", "crud", "session", "throttle", "rbac", "publish")
for _path in PATHS:
    RETRIES.labels(_path), GIVE_UPS.labels(_path)


class Retryable(Exception):
    """The work lost a race with another transaction; running it again may succeed."""


class Busy(Exception):
    """Retries ran out: the caller is told to come back shortly (503 with Retry-After)."""

    retry_after = 1


def is_conflict(exc: BaseException) -> bool:
    """A deadlock victim, a lock-wait timeout or a serialization failure, on any of our databases."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is None and getattr(orig, "args", None) and isinstance(orig.args[0], int):
        code = orig.args[0]
    return code in CONFLICT_CODES or "database is locked" in str(orig).lower()


@asynccontextmanager
async def transient(transaction: Any) -> AsyncIterator[Any]:
    """`async with transient(engine.begin()) as conn`: a conflict anywhere in the block, COMMIT
    included, becomes `Retryable` (the transaction is rolled back as usual)."""
    try:
        async with transaction as conn:
            yield conn
    except DBAPIError as exc:
        if is_conflict(exc):
            raise Retryable(str(exc.orig)) from exc
        raise


def _busy() -> Exception:
    return Busy("the database is busy; retry shortly")


async def retrying(work: Callable[[], Awaitable[T]], *, path: str, give_up: Callable[[], Exception] = _busy,
                   attempts: int = 4, delay: float = 0.005, budget: float | None = None, cap: float = 0.25) -> T:
    """`await work()`, again after a jittered, doubling pause (at most `cap`) each time it raises
    `Retryable`: `attempts` tries, or with a `budget`, as many as start within `budget` seconds
    (conflicts between cluster nodes can last longer than a few quick tries); then `give_up()`.
    `path` names the write path in the metrics."""
    deadline = None if budget is None else time.monotonic() + budget
    attempt = 0
    while True:
        try:
            return await work()
        except Retryable:
            attempt += 1
            pause = min(cap, delay * (2 ** (attempt - 1))) * random.uniform(0.5, 1.5)
            if deadline is None and attempt >= attempts or deadline is not None and \
                    time.monotonic() + pause >= deadline:
                GIVE_UPS.labels(path).inc()
                raise give_up() from None
            RETRIES.labels(path).inc()
            if pause:
                await asyncio.sleep(pause)


async def in_transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]], *, path: str,
                         budget: float | None = None) -> T:
    """`await work(conn)` in one transaction of `engine`; on a conflict (at any statement or at
    COMMIT) the whole transaction is rolled back and run again, so `work` must do everything it
    writes through `conn` and keep no state between attempts. Out of budget: `Busy` (503)."""
    async def attempt() -> T:
        async with transient(engine.begin()) as conn:
            return await work(conn)

    return await retrying(attempt, path=path, budget=WRITE_BUDGET if budget is None else budget)
