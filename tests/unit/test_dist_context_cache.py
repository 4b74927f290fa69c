"""Operator changes and the per-worker admission context cache, in-process on SQLite and MariaDB:
a change made through the app decides the very next call on every worker (the world: `dist_world`)."""
from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from dist_world import (
    admit,
    assert_counters_match_usage,
    assert_error,
    clear_of_period_end,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    make_world,
    set_row,
)

from modules.pipeline_dist import admission
from modules.pipeline_dist.limits import DistError
from conftest import every_database

pytestmark = every_database

# ---- settings changes and the per-worker context cache ------------------------------------------------

async def test_operator_changes_reach_the_next_admission_on_every_worker(dist_admin):
    """Workers cache admission contexts; a change made through the app still decides the very next
    call on every worker, and one made behind the app's back (plain SQL) within the cache's TTL."""
    from sqlalchemy import text

    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, capacity={}, link_fields={"daily_quota": 100})
    app_store = dist_admin.ctx.extras["dist"].store

    async def other_worker(request_id: str) -> admission.Admitted:  # the test's own store: another worker
        return await admission.admit(w.store, w.ctx.settings, distributor_id=w.distributor_id, code=w.code,
                               request_id=request_id, units=1, client_ip=None)

    async def change_link(**values: Any) -> None:
        r = await dist_admin.api("PATCH", f"/api/pipeline_dist/distributor_pipeline/{w.link_id}", json=values)
        assert r.status_code == 200, r.text

    assert (await admit(w)).json()["unit_price"] == "0.020000"
    assert (await other_worker("w2-1")).call["unit_price"] == Decimal("0.02")
    await change_link(price_mode="unit", unit_price="0.05")
    assert (await admit(w)).json()["unit_price"] == "0.050000"
    assert (await other_worker("w2-2")).call["unit_price"] == Decimal("0.05")

    await change_link(daily_quota=4)  # 4 calls made today: the next one is over, on both workers
    assert assert_error(await admit(w), 429)["limit"] == "link.daily"
    with pytest.raises(DistError) as refused:
        await other_worker("w2-3")
    assert (refused.value.status, refused.value.limit.name) == (429, "link.daily")
    await change_link(daily_quota=100)
    assert (await admit(w)).status_code == 201
    assert (await other_worker("w2-4")).call["status"] == "running"

    for store in (app_store, w.store):
        if hasattr(store, "contexts"):
            store.contexts.ttl = 0.3
    async with w.engine.begin() as conn:  # text(): not a write the app can see
        await conn.execute(text("UPDATE pipelines SET status = 'disabled' WHERE id = :id"), {"id": w.pipeline_id})
    await asyncio.sleep(0.4)
    assert_error(await admit(w), 404)
    with pytest.raises(DistError) as refused:
        await other_worker("w2-5")
    assert refused.value.status == 404
    await assert_counters_match_usage(w)


async def test_a_limit_set_mid_period_counts_the_calls_already_made(dist_admin):
    """A daily quota of 4 set after 3 calls today leaves one call, not four."""
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin)
    assert [(await admit(w)).status_code for _ in range(3)] == [201] * 3
    r = await dist_admin.api("PATCH", f"/api/pipeline_dist/distributor_pipeline/{w.link_id}", json={"daily_quota": 4})
    assert r.status_code == 200, r.text
    last = await admit(w)
    assert last.status_code == 201 and last.headers["RateLimit-Remaining"] == "0", last.text
    assert assert_error(await admit(w), 429)["limit"] == "link.daily"
    await assert_counters_match_usage(w)


async def test_writes_through_the_app_bump_the_context_version(dist_admin):
    """The counter the cache checks moves with every write of a cached table, and only then."""
    from sqlalchemy import text

    async def version() -> int:
        async with dist_admin.engine.connect() as conn:
            return (await conn.execute(text("SELECT version FROM table_versions WHERE name = 'dist_context'"))
                    ).scalar() or 0

    before = await version()
    w = await make_world(dist_admin)  # pipeline, step, price, publish, distributor, key, link: all through the app
    setup = await version()
    assert setup > before
    assert (await dist_admin.api("GET", f"/api/pipeline_dist/distributor_pipeline/{w.link_id}")).status_code == 200
    assert (await admit(w)).status_code == 201  # calls and counters are not cached tables
    assert await version() == setup
    await set_row(w, "distributors", w.distributor_id, daily_quota=5)
    assert await version() == setup + 1
