"""Issue 13, points 1 and 2, the cases test_rbac_ecosystem.py leaves out, on SQLite and MariaDB:
built-in roles whose orgtypeid is '0', '' or NULL, the ids `register` gives the ones it creates,
grants to a `*.name` role, and argon2 hashes still accepted (and kept) under the ecosystem scheme."""
from __future__ import annotations

import dataclasses

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, insert, select, update

from app.auth import rbac
from app.auth.passwords import ecosystem_encode, hash_password
from app.cli.rbac_cmds import _register
from app.core.db import make_engine
from conftest import app_settings, prepare_databases
from generators.loader import load_specs
from generators.schema import build_metadata
from helpers import ECOSYSTEM, Operator, query

KEY = "ytguiojbhvhbnkl"
ALICE_PW, BOB_PW = "alice-Pass-1", "bob-Pass-1"
BUILT_IN = ("any", "anonymous", "logined")


async def ecosystem_database(url: str, orgtypeid: str | None) -> None:
    """The ecosystem's schema; its built-in roles with `orgtypeid`; alice (ecosystem format) as
    biz.operator and bob (an argon2 hash some tool left) with no role."""
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(build_metadata(load_specs([ECOSYSTEM / "rbac-models"])).create_all)
        role, users, userrole = rbac.table("role"), rbac.table("users"), rbac.table("userrole")
        for rid in BUILT_IN:
            await conn.execute(insert(role).values(id=rid, orgtypeid="x", name=rid))
            await conn.execute(update(role).where(role.c.id == rid).values(orgtypeid=orgtypeid))
        await conn.execute(insert(role).values(id="r-op", orgtypeid="biz", name="operator"))
        await conn.execute(insert(users).values(id="u-alice", username="alice", user_status="0", orgid="org-1",
                                                password=ecosystem_encode(ALICE_PW, KEY), login_fail_count=0))
        await conn.execute(insert(users).values(id="u-bob", username="bob", user_status="0", orgid="org-1",
                                                password=hash_password(BOB_PW), login_fail_count=0))
        await conn.execute(insert(userrole).values(id="ur-1", userid="u-alice", roleid="r-op"))
    await engine.dispose()


def shared_settings(db_url: str, rbac_url: str, tmp_path):
    base = app_settings(db_url, rbac_url, tmp_path)
    return dataclasses.replace(base, rbac_password_scheme="ecosystem", rbac_password_key=KEY,
                               rbac_defaults={**base.rbac_defaults, "*.operator": ["/pipeline_ops/**"]})


async def count(url: str, stmt) -> int:
    return (await query(url, stmt)).scalar()


@pytest.mark.parametrize("orgtypeid", ["0", "", None], ids=["zero", "empty", "null"])
async def test_built_in_roles_are_known_by_their_ids_whatever_their_orgtypeid(db_url, rbac_url, tmp_path,
                                                                              orgtypeid):
    from app.web.app import create_app

    await prepare_databases(db_url, db_url)
    await ecosystem_database(rbac_url, orgtypeid)
    settings = shared_settings(db_url, rbac_url, tmp_path)
    rbac.invalidate()
    await _register(settings, dry_run=False)
    role, rp = rbac.table("role"), rbac.table("rolepermission")
    for rid in BUILT_IN:  # reused, no twin made
        assert await count(rbac_url, select(func.count()).select_from(role)
                           .where((role.c.id == rid) | (role.c.name == rid))) == 1
    assert await count(rbac_url, select(func.count()).select_from(rp).where(rp.c.roleid == "any")) >= 5
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/login")).status_code == 200  # through their `any`
        op = Operator(client)
        assert (await op.login("alice", ALICE_PW)).status_code == 303
        me = (await op.me()).json()  # `/me` through their `logined`
        assert {"any", "logined", "biz.operator", "biz.*", "*.operator"} <= set(me["roles"])
        assert (await client.get("/pipeline_ops/pipeline_pricing")).status_code == 200  # a `*.operator` grant
        assert (await client.get("/pipeline_core/pipelines")).status_code == 403
    rbac.invalidate()


async def test_register_creates_missing_built_in_roles_with_their_literal_ids(db_url, tmp_path):
    settings = app_settings(db_url, db_url, tmp_path)
    await prepare_databases(db_url, db_url)
    await _register(dataclasses.replace(settings, rbac_defaults={**settings.rbac_defaults, "anonymous": ["/"]}),
                    dry_run=False)
    r = rbac.table("role")
    rows = (await query(db_url, select(r.c.id, r.c.orgtypeid, r.c.name).where(r.c.name.in_(BUILT_IN)))).all()
    assert sorted(tuple(row) for row in rows) == [("anonymous", "0", "anonymous"), ("any", "0", "any"),
                                                  ("logined", "0", "logined")]


async def test_the_ecosystem_scheme_accepts_an_argon2_hash_and_leaves_it_alone(db_url, rbac_url, tmp_path):
    from app.web.app import create_app

    await prepare_databases(db_url, db_url)
    await ecosystem_database(rbac_url, "0")
    settings = shared_settings(db_url, rbac_url, tmp_path)
    rbac.invalidate()
    await _register(settings, dry_run=False)
    u = rbac.table("users")
    before = await count(rbac_url, select(u.c.password).where(u.c.id == "u-bob"))
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await Operator(client).login("bob", "wrong-Pass-1")).status_code == 400
        assert (await Operator(client).login("bob", BOB_PW)).status_code == 303
    assert await count(rbac_url, select(u.c.password).where(u.c.id == "u-bob")) == before
    assert before.startswith("$argon2")
    rbac.invalidate()


def test_adduser_files_users_under_the_org_given_or_the_default_one_created_when_missing(db_url, tmp_path):
    import asyncio

    from test_rbac_register import cli

    for args in (["amy"], ["ben", "--org", "acme-east"]):
        r = cli(["rbac", "adduser", *args, "--password-stdin", "--role", "ops.viewer"], db_url, tmp_path,
                stdin="Passw0rd-long\n")
        assert r.returncode == 0, r.stdout + r.stderr
    u, o = rbac.table("users"), rbac.table("organization")
    users = dict((asyncio.run(query(db_url, select(u.c.username, u.c.orgid)))).all())
    orgs = dict((asyncio.run(query(db_url, select(o.c.id, o.c.orgname)))).all())
    assert users == {"amy": "pipeline-app", "ben": "acme-east"}
    assert orgs == {"pipeline-app": "Pipeline-App", "acme-east": "acme-east"}
