"""Fixtures every test folder uses: real databases, the app in-process, the clock.

Every database test runs on SQLite and on MariaDB; the app's end-to-end, distributor and fault
tests also on PostgreSQL (`pytestmark = every_database`). MariaDB is found at $PIPELINE_TEST_MARIADB
(default mysql://root@127.0.0.1:3306), PostgreSQL at $PIPELINE_TEST_POSTGRES. A server that is
down is skipped on a laptop, but fails under CI=true: CI must test them all.

This file stays at tests/ (above unit/ and e2e/): pytest loads it for both folders and puts this
folder on sys.path, so `from conftest import …` and `from helpers import …` work from either.
Plain helpers live in helpers.py; `seed` is re-exported here for the files that import it so.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import ADMIN_PASSWORD, Clock, Operator, seed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARIADB = os.environ.get("PIPELINE_TEST_MARIADB", "mysql://root@127.0.0.1:3306")
POSTGRES = os.environ.get("PIPELINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
__all__ = ["app_settings", "every_database", "make_database", "prepare_databases", "seed"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _server_or_skip(kind: str, probe) -> None:
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not here"
        if IN_CI:
            pytest.fail(f"{kind} is required under CI=true and is not reachable: {exc}")
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


def make_database(kind: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
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


# A module's `pytestmark = every_database` runs its db_url tests on PostgreSQL too.
every_database = pytest.mark.parametrize("db_url", ["sqlite", "mariadb", "postgresql"], indirect=True)


def kind_of(url: str) -> str:
    """The `make_database` kind of a URL it made."""
    return {"sqlite": "sqlite", "postgresql": "postgresql"}.get(url.split(":", 1)[0], "mariadb")


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def any_db_url(request, tmp_path):
    """Like db_url, plus PostgreSQL: for the DDL tests."""
    url, drop = make_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture
def new_database(tmp_path):
    """Make fresh databases on demand: `new_database("mariadb")` gives a URL. Every one is dropped
    at teardown, also when the test fails half-way (a loop over kinds leaves nothing behind)."""
    drops: list[Callable[[], None]] = []

    def make(kind: str) -> str:
        url, drop = make_database(kind, tmp_path)
        drops.append(drop)
        return url

    yield make
    for drop in reversed(drops):
        drop()


@pytest.fixture
def clock():
    """The clock `app.core.clock.utcnow` reads, under the test's control: it runs on from the real
    now until the test moves it (`advance`, `at_local`) or holds it (`stop`); the real clock comes
    back afterwards. Only the app in this process sees it, not a server process."""
    from app.core.clock import set_source

    c = Clock(datetime.now(UTC))
    set_source(c)
    yield c
    set_source(None)


# ---- the app, in-process (Litestar's test client) ----------------------------------------

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
    from app.core.config import load_settings

    return dataclasses.replace(load_settings(), database=app_url, rbac_database=rbac_url, data_dir=data_dir,
                               key_secret="test-secret")


@pytest.fixture
async def live_app(db_url, tmp_path):
    """The real app in-process on a fresh database (of `db_url`), RBAC in the same DB,
    every path registered and an admin `admin` with role `pipeline.admin`. Yields (app, client)."""
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


@pytest.fixture
def rbac_url(db_url, tmp_path):
    """A second, separate database of the same kind as `db_url` for the RBAC tables."""
    url, drop = make_database(kind_of(db_url), tmp_path)
    yield url
    drop()


@dataclasses.dataclass
class AuthEnv:
    """The app with its RBAC tables in a database of their own, and a browser on it."""

    app: Any
    client: Any  # Litestar's AsyncTestClient
    op: Operator  # the browser of `client`
    ctx: Any  # the app's own context (its engines live on the app's event loop)
    app_db: Any  # engines for the test's own checks
    rbac_db: Any

    def other_client(self, **kwargs: Any):
        """A second browser on the same app (same worker, same databases)."""
        from litestar.testing import AsyncTestClient

        return AsyncTestClient(app=self.app, **kwargs)

    async def scalar(self, engine, stmt):
        async with engine.connect() as conn:
            return (await conn.execute(stmt)).scalar()


AUTH_USERS = {"admin": ("admin-Pass-1", "pipeline.admin"), "viewer": ("viewer-Pass-1", "pipeline.viewer"),
              "gone": ("gone-Pass-1", "pipeline.admin")}


@pytest.fixture
async def auth_env(db_url, rbac_url, tmp_path):
    """The real app on two fresh databases (app and RBAC), every path registered, three users
    (AUTH_USERS): admin (pipeline.admin), viewer (pipeline.viewer: may only view pipeline records)
    and gone (disabled)."""
    from litestar.testing import AsyncTestClient
    from sqlalchemy import update

    from app.auth import rbac
    from app.core.db import make_engine
    from app.web.app import create_app

    rbac.invalidate()
    await prepare_databases(db_url, rbac_url)
    settings = app_settings(db_url, rbac_url, tmp_path)
    settings = dataclasses.replace(settings, rbac_defaults={
        **settings.rbac_defaults, "pipeline.viewer": ["/pipeline_core/pipelines/{id}"]})
    app = create_app(settings)
    engine = make_engine(rbac_url)
    await rbac.register_paths(engine, rbac.app_paths(app), settings.rbac_defaults, dry_run=False)
    ids = {name: (await rbac.add_user(engine, name, password, role))[0]
           for name, (password, role) in AUTH_USERS.items()}
    users = rbac.table("users")
    async with engine.begin() as conn:
        await conn.execute(update(users).where(users.c.id == ids["gone"]).values(user_status="1"))
    await engine.dispose()
    app_db, rbac_db = make_engine(db_url), make_engine(rbac_url)
    async with AsyncTestClient(app=app) as client:
        yield AuthEnv(app, client, Operator(client), app.state.ctx, app_db, rbac_db)
    await app_db.dispose()
    await rbac_db.dispose()
    rbac.invalidate()


@pytest.fixture
async def ctx(db_url, tmp_path):
    """An app context without HTTP (settings, the compiled catalog, an engine of this event loop)
    on a fresh database with every app table: for services called directly."""
    from app.core.catalog import load_catalog
    from app.core.context import AppContext
    from app.core.db import make_engine

    c = AppContext(app_settings(db_url, db_url, tmp_path), load_catalog(ROOT / "build"), db=make_engine(db_url))
    async with c.db.begin() as conn:
        await conn.run_sync(c.catalog.metadata.create_all)
    yield c
    await c.db.dispose()
