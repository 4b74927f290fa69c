"""`pipeline-app rbac check` on an install from before /metrics left the `any` role: it says so
(a warning line naming the grant and the way out) and changes nothing."""
from __future__ import annotations

import asyncio

from sqlalchemy import select
from test_rbac_register import cli, rows

from app.auth import rbac
from app.core.db import make_engine


async def install(url: str, defaults: dict[str, list[str]]) -> None:
    engine = make_engine(url)
    try:
        await rbac.ensure_rbac_schema(engine)
        await rbac.register_paths(engine, ["/login", "/metrics", "/pipeline_core/pipelines"], defaults, dry_run=False)
    finally:
        await engine.dispose()


def grants(url: str) -> list:
    rp = rbac.table("rolepermission")
    return asyncio.run(rows(url, select(rp.c.id, rp.c.roleid, rp.c.permid).order_by(rp.c.id)))


def test_check_warns_of_a_public_metrics_grant_and_changes_nothing(db_url, tmp_path):
    asyncio.run(install(db_url, {"any": ["/login", "/metrics"], "anonymous": ["/**"],
                                 "pipeline.admin": ["/metrics"]}))
    before = grants(db_url)
    r = cli(["rbac", "check"], db_url, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    warnings = [line for line in r.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, r.stdout
    assert "any: /metrics" in warnings[1] and "anonymous: /**" in warnings[0]
    assert all("PIPELINE_METRICS_TOKEN" in w for w in warnings)
    assert "pipeline.admin" not in r.stdout  # a role one logs in for is no warning
    assert grants(db_url) == before


def test_check_is_quiet_when_metrics_is_not_public(db_url, tmp_path):
    asyncio.run(install(db_url, {"any": ["/login"], "pipeline.admin": ["/metrics"]}))
    r = cli(["rbac", "check"], db_url, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "public grants of /metrics: []" in r.stdout and "warning:" not in r.stdout


def test_check_reports_formats_roles_and_rows_it_does_not_understand(db_url, tmp_path):
    from sqlalchemy import insert

    from app.auth.passwords import ecosystem_encode

    asyncio.run(install(db_url, {"any": ["/login"]}))

    async def odd_rows() -> None:
        engine = make_engine(db_url)
        try:
            async with engine.begin() as conn:
                users, role = rbac.table("users"), rbac.table("role")
                ur, p = rbac.table("userrole"), rbac.table("permission")
                for uid, stored in (("u1", ecosystem_encode("pw-1-long", "ytguiojbhvhbnkl")), ("u2", "plain?")):
                    await conn.execute(insert(users).values(id=uid, username=uid, password=stored, user_status="0"))
                await conn.execute(insert(role).values(id="r-blank", orgtypeid="biz", name=""))
                await conn.execute(insert(ur).values(id="ur-x", userid="u1", roleid="no-such-role"))
                await conn.execute(insert(p).values(id="p-x", name="x", path=""))
        finally:
            await engine.dispose()

    asyncio.run(odd_rows())
    r = cli(["rbac", "check"], db_url, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr  # a password in no known format
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert lines["scheme"] == "argon2"
    assert lines["users by password format"] == "{'ecosystem': 1, 'unknown': 1}"
    assert lines["built-in roles found"] == "['any']"
    assert lines["built-in roles missing"] == "['anonymous', 'logined']"
    assert lines["rows not understood"] == ("{'roles without a name': 1, 'user roles naming no role': 1, "
                                            "'permissions without a path': 1}")
    assert "note: users in the ecosystem's format cannot log in under the argon2 scheme" in r.stdout
