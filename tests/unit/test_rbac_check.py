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
