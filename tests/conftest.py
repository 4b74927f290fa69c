"""Shared fixtures: real databases. Every database test runs on SQLite and on MariaDB.

MariaDB is found at $PIPELINE_TEST_MARIADB (default mysql://root@127.0.0.1:3306). When it is
down the MariaDB half is skipped on a laptop, but fails under CI=true: CI must test both.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

MARIADB = os.environ.get("PIPELINE_TEST_MARIADB", "mysql://root@127.0.0.1:3306")
POSTGRES = os.environ.get("PIPELINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _server_or_skip(kind: str, probe) -> None:
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not here"
        if IN_CI and kind == "mariadb":
            pytest.fail(f"MariaDB is required under CI=true and is not reachable: {exc}")
        pytest.skip(f"{kind} not reachable: {exc}")


def _mariadb_admin():
    import pymysql
    from sqlalchemy.engine import make_url

    u = make_url(MARIADB)
    return pymysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
                           password=u.password or "", autocommit=True)


def _postgres_admin():
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(POSTGRES)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username or "postgres",
                                     password=u.password, database="postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    return lambda sql: asyncio.run(run(sql))


def make_database(kind: str, tmp_path: Path) -> tuple[str, callable]:
    """A fresh, empty database of `kind`; returns its URL and a function that drops it."""
    name = "pt_" + secrets.token_hex(6)
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / (name + '.db')}", lambda: None
    if kind == "mariadb":
        _server_or_skip(kind, lambda: _mariadb_admin().close())
        conn = _mariadb_admin()
        conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        conn.close()

        def drop() -> None:
            c = _mariadb_admin()
            c.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            c.close()

        return f"{MARIADB.rstrip('/')}/{name}", drop
    if kind == "postgresql":
        run = _postgres_admin()
        _server_or_skip(kind, lambda: run("SELECT 1"))
        run(f"CREATE DATABASE {name}")
        return f"{POSTGRES.rstrip('/')}/{name}", lambda: run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    raise ValueError(kind)


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request, tmp_path):
    """A fresh empty database URL, once on SQLite and once on MariaDB."""
    url, drop = make_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def any_db_url(request, tmp_path):
    """Like db_url, plus PostgreSQL: for the DDL tests."""
    url, drop = make_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture
def shared_dir() -> Path:
    return SHARED
