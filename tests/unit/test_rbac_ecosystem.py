"""The app against an RBAC database made and filled the way the ecosystem does it (issue 13).

The schema comes from the ecosystem's own table specs (tests/fixtures/ecosystem/rbac-models);
the rows are what its apps write: built-in roles `any`, `anonymous` and `logined` with orgtypeid
'0', a user whose password is the ecosystem's reversible format, and its role rows. The app runs
with the `ecosystem` password scheme, as on a database shared with the platform.
"""
from __future__ import annotations

import dataclasses

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, insert, select

from app.auth import rbac
from app.auth.passwords import ecosystem_encode
from app.cli.rbac_cmds import _register, check_report
from app.core.db import make_engine
from conftest import app_settings, prepare_databases
from generators.loader import load_specs
from generators.schema import build_metadata
from helpers import ECOSYSTEM, Operator, query

ECOSYSTEM_SPECS = ECOSYSTEM / "rbac-models"
KEY = "ytguiojbhvhbnkl"
ALICE_PW = "alice-Pass-1"


async def fill_as_the_ecosystem(url: str) -> str:
    """Schema from the ecosystem's specs; its built-in roles, a role and a user of its own."""
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(build_metadata(load_specs([ECOSYSTEM_SPECS])).create_all)
        role, users, userrole = rbac.table("role"), rbac.table("users"), rbac.table("userrole")
        for rid in ("any", "anonymous", "logined"):
            await conn.execute(insert(role).values(id=rid, orgtypeid="0", name=rid))
        await conn.execute(insert(role).values(id="r-op", orgtypeid="biz", name="operator"))
        await conn.execute(insert(users).values(id="u-alice", username="alice", user_status="0", orgid="org-1",
                                                password=ecosystem_encode(ALICE_PW, KEY), login_fail_count=0))
        await conn.execute(insert(userrole).values(id="ur-1", userid="u-alice", roleid="r-op"))
    await engine.dispose()
    return ecosystem_encode(ALICE_PW, KEY)


@pytest.fixture
async def shared(db_url, rbac_url, tmp_path):
    """(settings, stored password of alice) on an ecosystem-made RBAC database beside the app's."""
    await prepare_databases(db_url, db_url)  # the app's own tables (its RBAC copy is not used)
    stored = await fill_as_the_ecosystem(rbac_url)
    settings = dataclasses.replace(app_settings(db_url, rbac_url, tmp_path), rbac_password_scheme="ecosystem",
                                   rbac_password_key=KEY, rbac_defaults={
                                       **app_settings(db_url, rbac_url, tmp_path).rbac_defaults,
                                       "biz.*": ["/pipeline_core/**"]})
    rbac.invalidate()
    await _register(settings, dry_run=False)
    yield settings, stored
    rbac.invalidate()


async def scalar(url: str, stmt):
    return (await query(url, stmt)).scalar()


async def test_an_ecosystem_user_logs_in_and_nothing_of_theirs_is_rewritten(shared):
    from app.web.app import create_app

    settings, stored = shared
    role, users = rbac.table("role"), rbac.table("users")
    for rid in ("any", "logined"):  # register reused the ecosystem's rows, made no twin
        assert await scalar(settings.rbac_database, select(func.count()).select_from(role)
                            .where((role.c.id == rid) | (role.c.name == rid))) == 1
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/login")).status_code == 200  # anonymous, through the ecosystem's `any`
        op = Operator(client)
        assert (await op.login("alice", "wrong-Pass-1")).status_code == 400
        assert (await op.login("alice", ALICE_PW)).status_code == 303
        # biz.operator holds the grant given to the wildcard role biz.*
        assert (await client.get("/pipeline_core/pipelines")).status_code == 200
        assert (await client.get("/pipeline_ops/pipeline_pricing")).status_code == 403
    assert await scalar(settings.rbac_database, select(users.c.password).where(users.c.id == "u-alice")) == stored
    # our failures never touch the platform's lock counter
    assert await scalar(settings.rbac_database,
                        select(users.c.login_fail_count).where(users.c.id == "u-alice")) == 0


async def test_a_user_made_here_passes_the_ecosystems_own_check(shared):
    settings, _ = shared
    engine = make_engine(settings.rbac_database)
    try:
        from app.auth.passwords import PasswordScheme

        await rbac.add_user(engine, "bob", "bob-Pass-1", "biz.operator", scheme=PasswordScheme.of(settings),
                            org=("org-1", "Org 1"))
    finally:
        await engine.dispose()
    users = rbac.table("users")
    stored = await scalar(settings.rbac_database, select(users.c.password).where(users.c.username == "bob"))
    assert ecosystem_encode("bob-Pass-1", KEY) == stored  # password_encode(typed) == stored
    assert await scalar(settings.rbac_database, select(users.c.orgid).where(users.c.username == "bob")) == "org-1"
    report = await check_report(settings)
    assert report["users by password format"] == {"ecosystem": 2}
    assert report["built-in roles missing"] == []


async def test_an_account_the_platform_locked_is_refused_even_with_the_right_password(shared):
    from app.core.clock import utcnow
    from app.web.app import create_app

    settings, _ = shared
    users = rbac.table("users")
    engine = make_engine(settings.rbac_database)
    async with engine.begin() as conn:
        await conn.execute(users.update().where(users.c.id == "u-alice")
                           .values(login_fail_count=3, last_login_fail=utcnow()))
    await engine.dispose()
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await Operator(client).login("alice", ALICE_PW)
        assert r.status_code == 429
        assert "锁定" in r.text


def test_the_ecosystem_format_matches_its_test_vector():
    assert ecosystem_encode("test123", KEY) == "QUZVcXg5V1p1STMybG5Ia6mX9D0v7+g="
