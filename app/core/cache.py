"""The one per-worker TTL cache: grants, users, distributor keys and admission contexts.

Why per worker and short-lived: the databases are the truth shared by every worker and machine;
a cache only saves round trips, and its TTL bounds how long a change made behind the app's back
(plain SQL) takes to be seen. Concurrent misses of one key share a single load, so a burst of
requests after expiry costs one query, not one per request. Ages are read from `app.core.clock`
(tests move it); a value stored "in the future" (the clock was set back) counts as expired.
"""
from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from app.core.clock import seconds

_MISSING = object()


class TTLCache:
    """Values kept `ttl` seconds (0 disables caching), at most `size` entries."""

    def __init__(self, ttl: float = 3.0, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._entries: dict[Hashable, tuple[float, Any]] = {}  # key → (stored at, value)
        self._pending: dict[Hashable, asyncio.Future] = {}

    def clear(self) -> None:
        self._entries.clear()

    def discard(self, key: Hashable) -> None:
        """Forget `key` now (this worker changed what it holds, e.g. ended a session)."""
        self._entries.pop(key, None)

    def peek(self, key: Hashable, default: Any = None, ttl: float | None = None) -> Any:
        """The live value of `key`, or `default`: no await, for the hot path. The age is judged
        when read, so a shorter `ttl` set later applies to what is already stored."""
        hit = self._entries.get(key)
        if hit is not None and 0 <= seconds() - hit[0] < (self.ttl if ttl is None else ttl):
            return hit[1]
        return default

    def put(self, key: Hashable, value: Any) -> None:
        now = seconds()
        if len(self._entries) >= self.size:
            self._entries = {k: v for k, v in self._entries.items() if 0 <= now - v[0] < self.ttl}
            if len(self._entries) >= self.size:
                self._entries.clear()
        self._entries[key] = (now, value)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]], ttl: float | None = None) -> Any:
        """The cached value, or `load()`'s (shared by every caller missing the same key at once)."""
        ttl = self.ttl if ttl is None else ttl
        if ttl > 0:
            found = self.peek(key, _MISSING, ttl)
            if found is not _MISSING:
                return found
        pending = self._pending.get(key)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("lookup cancelled"))
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
        if ttl > 0:
            self.put(key, value)
        future.set_result(value)
        return value


_engine_keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def engine_key(engine: Any) -> str:
    """An engine's URL as a cache key, rendered once per engine (it is on every request's path)."""
    key = _engine_keys.get(engine)
    if key is None:
        key = _engine_keys[engine] = str(engine.url)
    return key
