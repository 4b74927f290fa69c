"""Which admission store a database gets: raw aiomysql on MariaDB/MySQL, SQLAlchemy elsewhere."""
from __future__ import annotations

from typing import Any

from app.core.config import Settings
from modules.pipeline_dist.admission import Store
from modules.pipeline_dist.mariadb_store import RawStore
from modules.pipeline_dist.sqla_store import SqlaStore


async def open_store(settings: Settings, engine: Any, catalog: Any, pool_size: int = 10) -> Store:
    """Raw aiomysql on MariaDB/MySQL, SQLAlchemy on anything else."""
    if engine.dialect.name in ("mysql", "mariadb"):
        return await RawStore.open(settings.database, pool_size)
    return SqlaStore(engine, catalog)
