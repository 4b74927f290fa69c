"""The distributor API's raw aiomysql connections: a small pool that connects to the first host of
the database URL that answers (several hosts: docs/cluster.md) and never hands out a broken one.

aiomysql's own pool connects to one fixed host; with a Galera node gone, every new connection
failed until the node came back although the other nodes were healthy. Here a connection that
was closed by a lost server (aiomysql closes it on 2006/2013), or is older than `recycle`, is
dropped on release or before reuse, and the next one is opened on the first host that answers.
Callers bound concurrency themselves (RawStore's FIFO gate), so the pool only keeps idle ones.
"""
from __future__ import annotations

import time
from typing import Any

from app.core.db import connect_first


class FailoverPool:
    """Idle connections (at most `size`), new ones from `connect_first` over `order`."""

    def __init__(self, order: list[tuple[str, int | None]], params: dict[str, Any], size: int,
                 recycle: float = 1800):
        self.order, self.params, self.size, self.recycle = order, params, size, recycle
        self._idle: list[tuple[float, Any]] = []
        self._closed = False

    async def acquire(self) -> Any:
        """A live connection: an idle one that still looks usable, else a new one."""
        import aiomysql

        while self._idle:
            opened, conn = self._idle.pop()
            if self._usable(conn, opened):
                return conn
            conn.close()
        conn = await connect_first(self.order, aiomysql.connect, **self.params)
        conn._pa_opened = time.monotonic()  # noqa: SLF001 - our own mark on the connection
        return conn

    def _usable(self, conn: Any, opened: float) -> bool:
        reader = getattr(conn, "_reader", None)
        gone = conn.closed or reader is None or reader.at_eof() or reader.exception() is not None
        return not gone and time.monotonic() - opened < self.recycle

    def release(self, conn: Any) -> None:
        """Back to the idle list, unless closed (a lost server, a cancelled statement) or surplus."""
        opened = getattr(conn, "_pa_opened", 0.0)
        if self._closed or len(self._idle) >= self.size or not self._usable(conn, opened):
            conn.close()
            return
        self._idle.append((opened, conn))

    def close(self) -> None:
        self._closed = True
        for _, conn in self._idle:
            conn.close()
        self._idle.clear()

    async def wait_closed(self) -> None:  # noqa: D102 - aiomysql.Pool's interface
        return None
