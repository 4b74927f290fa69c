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


# ---- the app, in-process (Litestar's test client) ----------------------------------------

ADMIN_PASSWORD = "admin-Secret-123"


async def prepare_databases(app_url: str, rbac_url: str) -> None:
    """Create the app tables and the RBAC schema (empty) in fresh databases."""
    from app.core.config import ROOT as APP_ROOT
    from app.core.db import make_engine
    from generators.schema import build_metadata
    from generators.loader import load_specs

    specs = load_specs([p for p in sorted((APP_ROOT / "models").iterdir()) if p.is_dir() and p.name != "rbac"])
    engine = make_engine(app_url)
    async with engine.begin() as conn:
        await conn.run_sync(build_metadata(specs).create_all)
    await engine.dispose()
    from app.auth import rbac
    engine = make_engine(rbac_url)
    await rbac.ensure_rbac_schema(engine)
    await engine.dispose()


def app_settings(app_url: str, rbac_url: str, data_dir: Path):
    import dataclasses

    from app.core.config import load_settings

    return dataclasses.replace(load_settings(), database=app_url, rbac_database=rbac_url, data_dir=data_dir,
                               key_secret="test-secret")


class Operator:
    """A logged-in browser-like client: keeps cookies and sends the CSRF token on writes."""

    def __init__(self, client):
        self.client = client

    @property
    def csrf(self) -> str:
        return self.client.cookies.get("csrftoken", "")

    async def login(self, username: str, password: str):
        await self.client.get("/login")
        return await self.client.post("/login", data={"username": username, "password": password,
                                                      "_csrf_token": self.csrf}, follow_redirects=False)

    async def api(self, method: str, path: str, **kwargs):
        headers = kwargs.pop("headers", {})
        if method.upper() not in ("GET", "HEAD"):
            headers.setdefault("x-csrftoken", self.csrf)
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def form(self, path: str, data: dict, **kwargs):
        return await self.client.post(path, data={**data, "_csrf_token": self.csrf}, follow_redirects=False,
                                      **kwargs)


@pytest.fixture
async def live_app(db_url, tmp_path):
    """The real app in-process on a fresh database (SQLite and MariaDB), RBAC in the same DB,
    every path registered and an admin `admin` with role `pipeline.admin`. Yields (app, ctx)."""
    from litestar.testing import AsyncTestClient

    from app.auth import rbac
    from app.web.app import create_app

    await prepare_databases(db_url, db_url)
    settings = app_settings(db_url, db_url, tmp_path)
    app = create_app(settings)
    from app.core.db import make_engine

    engine = make_engine(db_url)
    await rbac.register_paths(engine, rbac.app_paths(app), settings.rbac_defaults, dry_run=False)
    await rbac.add_user(engine, "admin", ADMIN_PASSWORD, "pipeline.admin")
    await engine.dispose()
    async with AsyncTestClient(app=app) as client:
        yield app, client


@pytest.fixture
async def admin(live_app):
    """An `Operator` logged in as the admin (all three modules granted)."""
    app, client = live_app
    op = Operator(client)
    r = await op.login("admin", ADMIN_PASSWORD)
    assert r.status_code == 303, r.text
    op.app = app
    op.ctx = app.state.ctx
    return op


async def seed(ctx, **rows) -> None:
    """Insert rows directly, on an engine of this event loop (the app client runs in another)."""
    from sqlalchemy import insert

    from app.core.db import make_engine

    engine = make_engine(ctx.settings.database)
    async with engine.begin() as conn:
        for table, items in rows.items():
            for item in items:
                await conn.execute(insert(ctx.catalog.tables[table].table).values(**item))
    await engine.dispose()
