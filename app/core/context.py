"""Per-process state: settings, the catalog and the two database engines."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.catalog import Catalog
from app.core.config import Settings
from app.core.db import make_engine, make_read_engine


@dataclass
class AppContext:
    settings: Settings
    catalog: Catalog
    db: AsyncEngine | None = None
    rbac_db: AsyncEngine | None = None
    reads: AsyncEngine | None = None  # MariaDB: autocommit connections for list reads (`make_read_engine`)
    extras: dict[str, Any] = field(default_factory=dict)
    keyed_prefixes: tuple[str, ...] = ()  # path prefixes a plugin authenticates by key, not by session

    async def start(self) -> None:
        """Engines are made in the worker process (after uvicorn forks), never before."""
        self.db = make_engine(self.settings.database)
        self.rbac_db = make_engine(self.settings.rbac_database)
        self.reads = make_read_engine(self.settings.database)

    @property
    def read_db(self) -> AsyncEngine:
        """Where a single-statement read goes: the autocommit engine where there is one."""
        return self.reads or self.db

    async def stop(self) -> None:
        for engine in (self.db, self.rbac_db, self.reads):
            if engine is not None:
                await engine.dispose()


def ctx_of(request: Any) -> AppContext:
    """The app context of a request (any object with `.app.state.ctx`)."""
    return request.app.state.ctx
