"""Several hosts in one database URL, tried in order (docs/cluster.md): with the first host
refusing connections, the app's engines and the distributor API's raw pool both work through the
second; with none answering, the error is "unavailable" (a 503), and a broken raw connection is
never handed out again."""
from __future__ import annotations

import pytest
from conftest import make_database
from live_server import free_port
from sqlalchemy import text

from app.core.db import async_url, dialect_name, first_host, hosts, is_unavailable, make_engine


@pytest.fixture
def mariadb_url(tmp_path):
    url, drop = make_database("mariadb", tmp_path)
    yield url
    drop()


def with_dead_host_first(url: str) -> tuple[str, int]:
    dead = free_port()  # nothing listens there: connection refused at once
    head, _, rest = url.partition("@")
    return f"{head}@127.0.0.1:{dead},{rest}", dead


def test_a_url_with_several_hosts_reads_as_users_write_it():
    url = "mysql://app:s%40cret@10.0.0.1:3306,10.0.0.2:3307,db3/app?charset=utf8mb4"
    assert hosts(url) == [("10.0.0.1", 3306), ("10.0.0.2", 3307), ("db3", None)]
    assert first_host(url) == "mysql://app:s%40cret@10.0.0.1:3306/app?charset=utf8mb4"
    assert async_url(url) == "mysql+aiomysql://app:s%40cret@10.0.0.1:3306,10.0.0.2:3307,db3/app?charset=utf8mb4"
    assert dialect_name(url) == "mysql"
    assert hosts("mysql://root@127.0.0.1/app") == [("127.0.0.1", None)]
    with pytest.raises(ValueError, match="MariaDB/MySQL only"):
        make_engine("postgresql://u@h1:5432,h2:5432/app")


async def test_engine_and_raw_pool_skip_a_host_that_refuses(mariadb_url):
    from modules.pipeline_dist.mariadb_store import RawStore

    url, _ = with_dead_host_first(mariadb_url)
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    store = await RawStore.open(url, size=2)
    try:
        async with store.transaction() as tx:
            cur = await tx._cursor()
            await cur.execute("SELECT @@port")
            assert (await cur.fetchone())[0] == (hosts(mariadb_url)[0][1] or 3306)
    finally:
        await store.close()


async def test_no_host_answering_is_unavailable_and_a_broken_connection_is_dropped(mariadb_url):
    from modules.pipeline_dist.mariadb_store import RawStore

    all_dead = f"mysql://root@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/x"
    engine = make_engine(all_dead)
    try:
        with pytest.raises(Exception) as caught:
            async with engine.connect():
                pass
        assert is_unavailable(caught.value)
    finally:
        await engine.dispose()
    with pytest.raises(Exception) as caught:
        await RawStore.open(all_dead)
    assert is_unavailable(caught.value)

    store = await RawStore.open(mariadb_url, size=2)
    try:
        conn = await store.pool.acquire()
        async with conn.cursor() as cur:
            await cur.execute("SELECT CONNECTION_ID()")
            (first,) = await cur.fetchone()
        conn.close()  # as aiomysql does when the server goes away mid-statement
        store.pool.release(conn)
        async with store.transaction() as tx:
            cur = await tx._cursor()
            await cur.execute("SELECT CONNECTION_ID()")
            assert (await cur.fetchone())[0] != first
    finally:
        await store.close()


async def test_a_pool_with_no_free_connection_is_unavailable_not_an_internal_error(mariadb_url):
    """Under overload a request may wait the pool's whole timeout for a connection: that is a 503
    with Retry-After (try again), never a 500 with a traceback."""
    import sqlalchemy.exc

    engine = make_engine(mariadb_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with engine.connect():
            with pytest.raises(sqlalchemy.exc.TimeoutError) as caught:
                async with engine.connect():
                    pass
        assert is_unavailable(caught.value)
    finally:
        await engine.dispose()


async def test_a_failed_rollback_or_commit_keeps_the_error_that_matters(mariadb_url, monkeypatch):
    """On Galera a node answers ROLLBACK (or COMMIT) of a transaction it aborted for a replicated
    one with 1213 (seen in the cluster test: a duplicate request id's rollback became a 500). The
    caller still gets the error that ended the block, a failed COMMIT is a conflict to retry, and
    the connection is not handed out again."""
    import pymysql

    from app.core.retry import Retryable
    from modules.pipeline_dist.mariadb_store import RawStore

    deadlock = pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")

    async def refuse(*_args):
        raise deadlock

    async def connection_id(tx) -> int:
        cur = await tx._cursor()
        await cur.execute("SELECT CONNECTION_ID()")
        return (await cur.fetchone())[0]

    store = await RawStore.open(mariadb_url, size=1)
    try:
        with pytest.raises(KeyError):
            async with store.transaction() as tx:
                first = await connection_id(tx)
                monkeypatch.setattr(tx.conn, "rollback", refuse)
                raise KeyError("the block's own error")
        with pytest.raises(Retryable):
            async with store.transaction() as tx:
                second = await connection_id(tx)
                monkeypatch.setattr(tx.conn, "commit", refuse)
        monkeypatch.undo()  # the server refused that COMMIT; the connection itself is sound
        async with store.transaction() as tx:
            assert await connection_id(tx) == second != first
    finally:
        await store.close()
