"""Async engines for the app and RBAC databases, from plain URLs users already know."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core import table_versions

# What a user writes → the async driver we run it on.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """`mysql://root@host/db` → `mysql+aiomysql://root@host/db?charset=utf8mb4` (drivers kept)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=ASYNC_DRIVERS.get(backend, parsed.drivername))
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


def dialect_name(url: str) -> str:
    """The DDL dialect for a URL: mysql, sqlite or postgresql."""
    backend = make_url(url).get_backend_name()
    return {"mariadb": "mysql", "postgres": "postgresql"}.get(backend, backend)


def make_engine(url: str, **kwargs) -> AsyncEngine:
    """An engine with the per-dialect settings that keep it honest under load."""
    full = async_url(url)
    backend = make_url(full).get_backend_name()
    if backend == "sqlite":
        database = make_url(full).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(full, connect_args={"timeout": 30}, **kwargs)
        table_versions.watch(engine)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_async_engine(full, **kwargs)
    table_versions.watch(engine)
    return engine


# Client-side connection failures of the raw drivers (pymysql/aiomysql: can't connect, server gone,
# lost connection, ...; asyncpg and SQLAlchemy wrap theirs as OperationalError/InterfaceError).
_LOST = frozenset({2002, 2003, 2006, 2013, 2055})


def is_unavailable(exc: BaseException) -> bool:
    """Is `exc` "the database cannot be reached" (answer 503 and retry later), on any driver,
    through SQLAlchemy or from a raw pool?"""
    if isinstance(exc, (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)):
        return True
    orig = getattr(exc, "orig", exc)
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    return code in _LOST or type(orig).__name__ in ("InterfaceError", "ConnectionDoesNotExistError")
