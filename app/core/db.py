"""Async engines for the app and RBAC databases, from plain URLs users already know."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
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


# mysql://user:pw@host1:3306,host2:3307/db?... : several hosts, tried in order (docs/cluster.md)
_HOSTS = re.compile(r"^(?P<head>[^:/]+://(?:[^@/]*@)?)(?P<hosts>[^/?#]*)(?P<tail>.*)$")


def hosts(url: str) -> list[tuple[str, int | None]]:
    """The (host, port) list of a URL, in the order to try them (one for a plain URL)."""
    m = _HOSTS.match(url)
    if not m or "," not in m["hosts"]:
        parsed = make_url(url)
        return [(parsed.host or "127.0.0.1", parsed.port)]
    out = []
    for part in m["hosts"].split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        out.append((host or "127.0.0.1", int(port) if port else None))
    return out


def first_host(url: str) -> str:
    """The URL with only its first host: what SQLAlchemy's URL parser reads."""
    m = _HOSTS.match(url)
    if not m or "," not in m["hosts"]:
        return url
    return m["head"] + m["hosts"].split(",")[0].strip() + m["tail"]


def async_url(url: str) -> str:
    """`mysql://root@host/db` → `mysql+aiomysql://root@host/db?charset=utf8mb4` (drivers kept;
    a URL with several hosts keeps them)."""
    m = _HOSTS.match(url)
    if m and "," in m["hosts"]:
        single = async_url(first_host(url))
        one = _HOSTS.match(single)
        return one["head"] + m["hosts"] + one["tail"]
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=ASYNC_DRIVERS.get(backend, parsed.drivername))
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


def dialect_name(url: str) -> str:
    """The DDL dialect for a URL: mysql, sqlite or postgresql."""
    backend = make_url(first_host(url)).get_backend_name()
    return {"mariadb": "mysql", "postgres": "postgresql"}.get(backend, backend)


IDLE_PING_SECONDS = 1.0  # a pooled connection idle longer than this is pinged before use


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a connection on checkout only when it sat idle in the pool (where a database restart
    or an idle timeout kills it unseen); not every checkout as `pool_pre_ping` does, a round trip
    on every request. A dead one raises DisconnectionError: the pool replaces it and retries."""
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _idle_since(_dbapi_conn, record):  # noqa: ANN001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping(dbapi_conn, record, _proxy):  # noqa: ANN001
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def make_engine(url: str, **kwargs) -> AsyncEngine:
    """An engine with the per-dialect settings that keep it honest under load."""
    full = async_url(url)
    order = hosts(full)
    full = first_host(full)
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
    kwargs.setdefault("pool_recycle", 1800)
    if len(order) > 1:
        if backend not in ("mysql", "mariadb"):
            raise ValueError("several hosts in one database URL: MariaDB/MySQL only (see docs/cluster.md)")
        kwargs["async_creator"] = _failover_creator(full, order)
    engine = create_async_engine(full, **kwargs)
    table_versions.watch(engine)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    if backend in ("mysql", "mariadb"):
        @event.listens_for(engine.sync_engine, "connect")
        def _refuse_misconfigured_cluster(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute(CLUSTER_VARIABLES)
            refusal = cluster_refusal(dict(cur.fetchall()))
            cur.close()
            if refusal:
                raise ClusterMisconfigured(refusal)

    return engine


def make_read_engine(url: str) -> AsyncEngine | None:
    """MariaDB/MySQL: a second engine whose connections run in autocommit, for the list page's
    one SELECT (`AppContext.reads`). Each of its statements is its own consistent read, so a
    connection goes back to the pool with no transaction to end: no ROLLBACK round trip a page,
    as the main engine's reset on return must send. Other databases: None (the main engine)."""
    if make_url(first_host(async_url(url))).get_backend_name() not in ("mysql", "mariadb"):
        return None
    return make_engine(url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)


def _failover_creator(url: str, order: list[tuple[str, int | None]]) -> Any:
    """An `async_creator` that opens a connection to the first host of `order` that answers,
    with the arguments SQLAlchemy's dialect would have used for `url`."""
    parsed = make_url(url)
    _, params = parsed.get_dialect()().create_connect_args(parsed)
    params.setdefault("connect_timeout", 3)  # a host that does not answer at all: move on soon

    async def creator() -> Any:
        return await connect_first(order, _driver_connect(parsed.get_driver_name()), **params)

    return creator


def _driver_connect(driver: str) -> Any:
    if driver == "asyncmy":
        import asyncmy

        return asyncmy.connect
    import aiomysql

    return aiomysql.connect


async def connect_first(order: list[tuple[str, int | None]], connect: Any, **params: Any) -> Any:
    """`await connect(host=, port=, **params)` for each host in turn; the first that answers
    wins. Only "cannot reach it" moves on (a wrong password is the same on every node)."""
    last: BaseException | None = None
    for host, port in order:
        try:
            return await connect(**{**params, "host": host, "port": port or 3306})
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not is_unavailable(exc):
                raise
            last = exc
    assert last is not None
    raise last


class ClusterMisconfigured(RuntimeError):
    """A Galera node set up so that the app's writes would not replicate exactly: never used."""


# What the app needs of a MariaDB Galera node (docs/cluster.md), read on each new connection
# (the session's own values: a session may differ from the server's defaults).
CLUSTER_VARIABLES = "SHOW SESSION VARIABLES WHERE Variable_name IN ('wsrep_on', 'binlog_format')"
CLUSTER_STATUS = "SHOW STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state', 'wsrep_local_state_comment')"


def cluster_refusal(variables: dict[str, str]) -> str | None:
    """Why the app refuses this MariaDB session (None: fine). Galera replicates row events only:
    with any other binlog_format a node applies statements again on the other nodes, where
    they can come out differently. (The app never rolls back to a savepoint, so log_bin may
    be on or off: see modules/pipeline_dist/procedures.py.)"""
    if str(variables.get("wsrep_on", "OFF")).upper() != "ON":
        return None
    if str(variables.get("binlog_format", "ROW")).upper() != "ROW":
        return (f"this MariaDB node runs Galera (wsrep_on=ON) with binlog_format={variables['binlog_format']}: "
                "set binlog_format=ROW in its server configuration (see docs/cluster.md)")
    return None


def cluster_unready(status: dict[str, str], variables: dict[str, str]) -> str | None:
    """Why a Galera node should get no traffic now (None: ready, or not a Galera node): it must
    accept queries (`wsrep_ready`) and hold the cluster's state (`wsrep_local_state` 4, Synced)."""
    if str(variables.get("wsrep_on", "OFF")).upper() != "ON":
        return None
    if str(status.get("wsrep_ready", "OFF")).upper() != "ON" or str(status.get("wsrep_local_state")) != "4":
        return (f"galera node not ready: wsrep_ready={status.get('wsrep_ready')}, "
                f"state {status.get('wsrep_local_state_comment') or status.get('wsrep_local_state')}")
    return None


# Client-side connection failures of the raw drivers (pymysql/aiomysql: can't connect, server gone,
# lost connection, ...; asyncpg and SQLAlchemy wrap theirs as OperationalError/InterfaceError).
_LOST = frozenset({2002, 2003, 2006, 2013, 2055})
# Server answers that mean "this node cannot take work now", not "your statement is wrong": a
# Galera node out of the primary component (1047 "WSREP has not yet prepared node for application
# use", 1180 an error during COMMIT while the cluster reconfigures), a server shutting down (1053)
# or a connection killed under us (1927). The raw drivers raise them as plain OperationalError.
_NODE_NOT_READY = frozenset({1047, 1053, 1180, 1927})


def is_unavailable(exc: BaseException) -> bool:
    """Is `exc` "the database cannot be reached" (answer 503 and retry later), on any driver,
    through SQLAlchemy or from a raw pool? A pool with no free connection for its whole timeout
    counts too: the server is overloaded, and a later try may well succeed."""
    if isinstance(exc, (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError, PoolTimeout)):
        return True
    orig = getattr(exc, "orig", exc)
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    return (code in _LOST or code in _NODE_NOT_READY
            or type(orig).__name__ in ("InterfaceError", "ConnectionDoesNotExistError"))
