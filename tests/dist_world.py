"""The distributor API tests' world: data set up the way an operator would (the admin JSON API:
pipeline, step, price, publish, capacity, distributor, link, generate_key), requests with a key,
and direct reads of the database; only what no operator can do (move a call's lease, backdate a
key) is written straight to the database. Used by the in-process `test_dist_*` files.
"""
from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.core.clock import utcnow
from modules.pipeline_dist.limits import periods
from modules.pipeline_dist.stores import open_store

API = "/api/dist/v1"


@pytest.fixture(name="dist_admin")
async def dist_admin_fixture(admin):
    """The admin, plus an engine and a store on the test's own event loop for direct reads and
    sweeps (the in-process app runs on another loop, so its engines cannot be used from here)."""
    from app.core.db import make_engine

    ctx = admin.ctx
    ctx.extras["dist"].keys.ttl = 0  # revocation visible at once in tests (the cache has its own test)
    admin.engine = make_engine(ctx.settings.database)
    admin.store = await open_store(ctx.settings, admin.engine, ctx.catalog)
    yield admin
    await admin.store.close()
    await admin.engine.dispose()


@dataclass
class World:
    admin: Any
    code: str
    pipeline_id: str
    distributor_id: str
    link_id: str
    capacity_id: str | None
    key: str

    @property
    def client(self):
        return self.admin.client

    @property
    def ctx(self):
        return self.admin.ctx

    @property
    def engine(self):
        return self.admin.engine

    @property
    def store(self):
        """A store of this (test) event loop: like another worker's (the app runs on its own loop)."""
        return self.admin.store


async def created(admin, path: str, body: dict) -> dict:
    r = await admin.api("POST", path, json=body)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


async def make_pipeline(admin, code: str, *, publish: bool = True, price: str = "0.02") -> str:
    p = await created(admin, "/api/pipeline_core/pipelines", {"code": code, "name": f"Pipeline {code}",
                                                              "status": "active"})
    await created(admin, "/api/pipeline_core/pipeline_steps", {"pipeline_id": p["id"], "seq": 1, "name": "extract",
                                                               "step_type": "transform"})
    await created(admin, "/api/pipeline_ops/pipeline_pricing", {
        "pipeline_id": p["id"], "billing_unit": "call", "price_mode": "unit", "unit_price": price, "currency": "CNY",
        "effective_from": "2020-01-01 00:00:00", "status": "active"})
    if publish:
        await created(admin, f"/api/pipeline_core/pipelines/{p['id']}/publish", {"note": "first"})
    return p["id"]


async def make_distributor(admin, **fields: Any) -> tuple[str, str]:
    d = await created(admin, "/api/pipeline_dist/distributors",
                      {"name": "dist-" + secrets.token_hex(4), "status": "active", **fields})
    key = (await created(admin, f"/api/pipeline_dist/distributors/{d['id']}/generate_key", {}))["api_key"]
    return d["id"], key


async def link(admin, distributor_id: str, pipeline_id: str, **fields: Any) -> str:
    return (await created(admin, "/api/pipeline_dist/distributor_pipeline",
                          {"distributor_id": distributor_id, "pipeline_id": pipeline_id, "enabled": "1",
                           **fields}))["id"]


async def make_world(admin, *, dist: dict | None = None, link_fields: dict | None = None,
                     capacity: dict | None = None, code: str = "ocr") -> World:
    pipeline_id = await make_pipeline(admin, code)
    capacity_id = None
    if capacity is not None:
        capacity_id = (await created(admin, "/api/pipeline_ops/pipeline_capacity",
                                     {"pipeline_id": pipeline_id, "status": "active", **capacity}))["id"]
    distributor_id, key = await make_distributor(admin, **(dist or {}))
    link_id = await link(admin, distributor_id, pipeline_id, **(link_fields or {}))
    return World(admin, code, pipeline_id, distributor_id, link_id, capacity_id, key)


async def clear_of_period_end(settings, margin: float = 30) -> None:
    """Quota periods end at local midnight: a test that fills a daily quota must not straddle one."""
    _, _, to_midnight, _ = periods(settings.business_timezone, utcnow())
    if to_midnight <= margin:
        await asyncio.sleep(to_midnight + 1)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def admit(w: World, request_id: str | None = None, *, key: str | None = None, code: str | None = None,
                **body: Any):
    body = {"request_id": request_id or secrets.token_hex(8), **body}
    return await w.client.post(f"{API}/pipelines/{code or w.code}/calls", json=body, headers=bearer(key or w.key))


async def finish(w: World, call_id: str, status: str = "succeeded", *, key: str | None = None, **body: Any):
    return await w.client.post(f"{API}/calls/{call_id}/finish", json={"status": status, **body},
                               headers=bearer(key or w.key))


async def set_row(w: World, table: str, row_id: str, **values: Any) -> None:
    t = w.ctx.catalog.tables[table].table
    async with w.engine.begin() as conn:
        await conn.execute(update(t).where(t.c.id == row_id).values(**values))


async def usage_rows(w: World) -> list[dict]:
    t = w.ctx.catalog.tables["pipeline_usage_log"].table
    async with w.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(t).where(t.c.distributor_id == w.distributor_id))]


async def counters(w: World) -> dict[str, int]:
    t = w.ctx.catalog.tables["quota_counters"].table
    async with w.engine.connect() as conn:
        return {r.id: r.used for r in await conn.execute(select(t.c.id, t.c.used))}


def assert_error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["status"] == status and err["message"]
    if code:
        assert err["code"] == code
    return err


async def assert_counters_match_usage(w: World) -> None:
    """Every counter equals a recount of the usage log: quotas count the calls of their scope
    (all calls of these tests are today's), concurrency counts the calls running now."""
    u = w.ctx.catalog.tables["pipeline_usage_log"].table
    scopes = {f"dist:{w.distributor_id}": u.c.distributor_id == w.distributor_id,
              f"pipe:{w.pipeline_id}": u.c.pipeline_id == w.pipeline_id,
              f"link:{w.distributor_id}:{w.pipeline_id}": (u.c.distributor_id == w.distributor_id)
              & (u.c.pipeline_id == w.pipeline_id)}
    got = await counters(w)
    async with w.engine.connect() as conn:
        for cid, used in got.items():
            scope, _, period = cid.partition("|")
            if scope not in scopes:
                continue
            where = [scopes[scope]] + ([u.c.status == "running"] if period == "C" else [])
            assert used == (await conn.execute(select(func.count()).where(*where))).scalar_one(), cid
