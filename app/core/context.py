"""Per-process state: settings, the catalog and the two database engines."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.catalog import Catalog
from app.core.config import Settings
from app.core.db import make_engine


@dataclass
class AppContext:
    settings: Settings
    catalog: Catalog
    db: AsyncEngine | None = None
    rbac_db: AsyncEngine | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    keyed_prefixes: tuple[str, ...] = ()  # path prefixes a plugin authenticates by key, not by session

    async def start(self) -> None:
        """Engines are made in the worker process (after uvicorn forks), never before."""
        self.db = make_engine(self.settings.database)
        self.rbac_db = make_engine(self.settings.rbac_database)

    async def stop(self) -> None:
        for engine in (self.db, self.rbac_db):
            if engine is not None:
                await engine.dispose()


def ctx_of(request: Any) -> AppContext:
    """The app context of a request (any object with `.app.state.ctx`)."""
    return request.app.state.ctx
