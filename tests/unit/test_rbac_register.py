"""Path registration, users and the `pipeline-app rbac` commands (app.auth.rbac, app.cli.main)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import query
from sqlalchemy import func, inspect, select

from app.auth import rbac
from app.auth.passwords import verify_password
from app.core.config import ROOT
from app.core.db import make_engine

ADMIN_ROLES = frozenset({"pipeline.admin", "pipeline.*", "*.admin"})  # with its wildcard forms
DEFAULTS = {"any": ["/login", "/static/**"], "pipeline.admin": ["/pipeline_core/**", "/rbac/**"]}


async def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            tables = [t for t in ("permission", "role", "rolepermission", "users", "userrole") if t in names]
            return {t: (await conn.execute(select(func.count()).select_from(rbac.table(t)))).scalar()
                    for t in tables}
    finally:
        await engine.dispose()


async def rows(url: str, stmt) -> list:
    return (await query(url, stmt)).all()


def cli(args: list[str], rbac_url: str, tmp_path: Path, stdin: str | None = None
        ) -> subprocess.CompletedProcess:
    env = {**os.environ, "SAGE_RBAC_DB": rbac_url, "PIPELINE_DB": f"sqlite:///{tmp_path / 'app.core.db'}",
           "PIPELINE_DATA": str(tmp_path / "data"), "PIPELINE_KEY_SECRET": "test-secret"}
    return subprocess.run([sys.executable, "-m", "app.cli.main", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def app():
    from app.core.config import load_settings
    from app.web.app import create_app

    return create_app(load_settings())


# ---------------------------------------------------------------- paths of the app

def test_route_paths_become_permission_paths():
    assert rbac.permission_path("/t/{id:str}/edit") == "/t/{id}/edit"
    assert rbac.permission_path("/static/{file_path:path}") == "/static/**"
    assert rbac.permission_path("/lang/{code:str}") == "/lang/{code}"


def test_app_paths_come_from_the_routes(app):
    paths = rbac.app_paths(app)
    assert paths == sorted(set(paths))
    manifest = json.loads((ROOT / "build" / "manifest.json").read_text())
    assert {r["path"] for r in manifest["routes"]} <= set(paths)
    assert {"/", "/login", "/logout", "/me", "/healthz", "/readyz", "/lang/{code}", "/static/**",
            "/schema"} <= set(paths)
    assert not any(":" in p for p in paths)


def test_every_path_the_app_serves_is_granted_to_some_role_by_default(app):
    """A route nobody is granted is unreachable (default deny): adding a route without adding
    its grant to `rbac_defaults` in conf/config.yaml fails here."""
    from app.core.config import load_settings

    defaults = load_settings().rbac_defaults
    grants = rbac.grant_set(tuple(g for paths in defaults.values() for g in paths))
    concrete = [p.replace("**", "x/y").replace("{", "").replace("}", "") for p in rbac.app_paths(app)]
    assert [p for p in concrete if not grants.allows(p)] == []


# ---------------------------------------------------------------- register

async def test_register_is_idempotent(db_url, app):
    engine = make_engine(db_url)
    try:
        await rbac.ensure_rbac_schema(engine)
        await rbac.ensure_rbac_schema(engine)  # existing tables are left alone
        paths = rbac.app_paths(app)
        first = await rbac.register_paths(engine, paths, DEFAULTS, dry_run=False)
        assert f"add permission {paths[0]}" in first and "add role pipeline.admin" in first
        assert "grant /pipeline_core/** to pipeline.admin" in first
        assert await rbac.register_paths(engine, paths, DEFAULTS, dry_run=False) == []
        assert await rbac.registered_paths(engine) == sorted(set(paths) | {"/pipeline_core/**", "/rbac/**"})
    finally:
        await engine.dispose()
    c = await counts(db_url)
    assert c["permission"] == len(set(paths) | {"/pipeline_core/**", "/rbac/**"})
    assert c["role"] == 2 and c["rolepermission"] == 4
    p, r = rbac.table("permission"), rbac.table("role")
    perm = await rows(db_url, select(p.c.name, p.c.permtype).where(p.c.path == "/login"))
    assert perm == [("/login", "path")]
    roles = sorted(tuple(x) for x in await rows(db_url, select(r.c.orgtypeid, r.c.name)))
    assert roles == [("0", "any"), ("pipeline", "admin")]  # a built-in role as the ecosystem writes it


async def test_dry_run_writes_nothing(db_url, app):
    engine = make_engine(db_url)
    try:
        await rbac.ensure_rbac_schema(engine)
        await rbac.register_paths(engine, ["/login"], {"any": ["/login"]}, dry_run=False)
        before = await counts(db_url)
        planned = await rbac.register_paths(engine, rbac.app_paths(app), DEFAULTS, dry_run=True)
        assert "add role pipeline.admin" in planned and "add permission /me" in planned
        assert "add permission /login" not in planned and "add role any" not in planned
        assert await counts(db_url) == before
        assert await rbac.register_paths(engine, rbac.app_paths(app), DEFAULTS, dry_run=True) == planned
    finally:
        await engine.dispose()


async def test_add_user_hashes_and_links_once(db_url):
    engine = make_engine(db_url)
    try:
        await rbac.ensure_rbac_schema(engine)
        uid, created = await rbac.add_user(engine, "ops", "first-Pass", "pipeline.ops")
        uid2, created2 = await rbac.add_user(engine, "ops", "second-Pass", "pipeline.ops")
        assert created and not created2 and uid == uid2
        assert re.fullmatch(r"[0-9a-f]{32}", uid), uid
        info = await rbac.user_info(engine, uid, ttl=0)
        assert info.roles == frozenset({"pipeline.ops", "pipeline.*", "*.ops"})
        assert info.active and info.username == "ops"
        record = await rbac.login_record(engine, "ops")
        assert record.password_hash.startswith("$argon2id$")
        assert verify_password("second-Pass", record.password_hash)
        assert not verify_password("first-Pass", record.password_hash)
    finally:
        await engine.dispose()
    assert (await counts(db_url))["userrole"] == 1


# ---------------------------------------------------------------- the commands

def test_cli_register_dry_run_then_register_then_nothing_to_do(db_url, tmp_path):
    dry = cli(["rbac", "register", "--dry-run"], db_url, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would add permission /login" in dry.stdout and "would grant /static/** to any" in dry.stdout
    import asyncio

    assert asyncio.run(counts(db_url)) == {}  # not even the tables were created
    real = cli(["rbac", "register"], db_url, tmp_path)
    assert real.returncode == 0, real.stderr
    assert "add permission /login" in real.stdout and "would" not in real.stdout
    after = asyncio.run(counts(db_url))
    again = cli(["rbac", "register"], db_url, tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert asyncio.run(counts(db_url)) == after


def test_cli_adduser_reads_the_password_from_stdin(db_url, tmp_path):
    import asyncio

    r = cli(["rbac", "adduser", "alice", "--password-stdin", "--role", "pipeline.admin"], db_url, tmp_path,
            stdin="s3cret pass\n")
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout + r.stderr

    async def check() -> None:
        engine = make_engine(db_url)
        try:
            record = await rbac.login_record(engine, "alice")
            assert verify_password("s3cret pass", record.password_hash)
            info = await rbac.user_info(engine, record.user_id, ttl=0)
            assert info.roles == ADMIN_ROLES
        finally:
            await engine.dispose()

    asyncio.run(check())
    empty = cli(["rbac", "adduser", "bob", "--password-stdin", "--role", "pipeline.admin"], db_url, tmp_path,
                stdin="\n")
    assert empty.returncode != 0 and "empty" in empty.stderr
    assert asyncio.run(counts(db_url))["users"] == 1


def test_cli_bootstrap_creates_a_demo_admin_once(db_url, tmp_path):
    import asyncio

    first = cli(["rbac", "bootstrap"], db_url, tmp_path)
    assert first.returncode == 0, first.stderr
    line = next(x for x in first.stdout.splitlines() if x.startswith("demo admin: admin / "))
    password = line.removeprefix("demo admin: admin / ")

    async def check() -> None:
        engine = make_engine(db_url)
        try:
            record = await rbac.login_record(engine, "admin")
            assert verify_password(password, record.password_hash)
            info = await rbac.user_info(engine, record.user_id, ttl=0)
            assert info.roles == ADMIN_ROLES
        finally:
            await engine.dispose()

    asyncio.run(check())
    second = cli(["rbac", "bootstrap"], db_url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "demo admin" not in second.stdout and password not in second.stdout
    assert asyncio.run(counts(db_url))["users"] == 1
