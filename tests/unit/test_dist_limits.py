"""Distributor API limits, in-process on SQLite and MariaDB: each quota and concurrency limit,
a limit of 0, lease expiry and the sweeper (the world: `dist_world`)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dist_world import (
    admit,
    assert_counters_match_usage,
    assert_error,
    clear_of_period_end,
    counters,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    finish,
    make_world,
    set_row,
    usage_rows,
)

from app.core.clock import utcnow
from modules.pipeline_dist.admission import Sweeper, sweep
from modules.pipeline_dist.limits import DIST_CALLS
from conftest import every_database

pytestmark = every_database

# ---- limits -------------------------------------------------------------------------------------------

LIMITS = {
    "distributor.daily": ("dist", {"daily_quota": 2}),
    "distributor.monthly": ("dist", {"monthly_quota": 2}),
    "link.daily": ("link", {"daily_quota": 2}),
    "link.monthly": ("link", {"monthly_quota": 2}),
    "pipeline.daily": ("capacity", {"daily_quota": 2}),
    "pipeline.monthly": ("capacity", {"monthly_quota": 2}),
    "pipeline.concurrency": ("capacity", {"max_concurrency": 2}),
    "distributor.concurrency": ("dist", {"max_concurrency": 2}),
}


@pytest.mark.parametrize("name", list(LIMITS))
async def test_each_limit(dist_admin, name):
    where, fields = LIMITS[name]
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, dist=fields if where == "dist" else None,
                         link_fields=fields if where == "link" else None,
                         capacity=fields if where == "capacity" else {})
    first = [await admit(w) for _ in range(2)]
    assert [r.status_code for r in first] == [201, 201], first[-1].text
    refusals = DIST_CALLS.labels("rejected", name)._value.get
    before = refusals()
    r = await admit(w, "over")
    err = assert_error(r, 429, "rate_limited")
    assert err["limit"] == name
    assert r.headers["RateLimit-Limit"] == r.headers["X-RateLimit-Limit"] == "2"
    assert r.headers["RateLimit-Remaining"] == r.headers["X-RateLimit-Remaining"] == "0"
    reset = int(r.headers["RateLimit-Reset"])
    assert int(r.headers["Retry-After"]) == reset == int(r.headers["X-RateLimit-Reset"])
    if name.endswith("concurrency"):
        assert reset == 1
        await finish(w, first[0].json()["call_id"])
        again = await admit(w, "over")  # a 429 leaves no row: the same request_id is admitted later
        assert again.status_code == 201, again.text
    else:
        assert 0 < reset <= (86400 if name.endswith("daily") else 31 * 86400) + 3600
        await finish(w, first[0].json()["call_id"])
        assert_error(await admit(w, "over"), 429)  # finishing never gives a quota back
    rows = await usage_rows(w)
    assert all(row["request_id"] != "over" or row["status"] == "running" for row in rows)
    assert refusals() == before + (1 if name.endswith("concurrency") else 2)  # each 429 counted once
    await assert_counters_match_usage(w)


async def test_limit_zero_refuses_at_once(dist_admin):
    w = await make_world(dist_admin, link_fields={"daily_quota": 0})
    err = assert_error(await admit(w), 429)
    assert err["limit"] == "link.daily"
    assert await counters(w) == {}  # nothing touched


async def test_lease_expiry_frees_the_slot(dist_admin):
    w = await make_world(dist_admin, capacity={"max_concurrency": 1})
    call_id = (await admit(w)).json()["call_id"]
    assert_error(await admit(w), 429)
    assert await sweep(w.store) == 0  # lease not over yet
    await set_row(w, "pipeline_usage_log", call_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    swept = await asyncio.gather(sweep(w.store), sweep(w.store))  # two workers at once
    assert sorted(swept) == [0, 1]
    assert (await counters(w))[f"pipe:{w.pipeline_id}|C"] == 0
    r = await admit(w)
    assert r.status_code == 201, r.text
    late = await finish(w, call_id)  # the crashed client comes back: harmless, still expired
    assert late.status_code == 200 and late.json()["status"] == "expired"
    assert (await counters(w))[f"pipe:{w.pipeline_id}|C"] == 1
    await assert_counters_match_usage(w)


async def test_sweeper_task_runs(dist_admin):
    w = await make_world(dist_admin, capacity={"max_concurrency": 1})
    call_id = (await admit(w)).json()["call_id"]
    await set_row(w, "pipeline_usage_log", call_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    sweeper = Sweeper(w.store, w.ctx.settings)
    sweeper.interval = 0.05
    sweeper.start()
    try:
        for _ in range(100):
            if (await usage_rows(w))[0]["status"] == "expired":
                break
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert (await usage_rows(w))[0]["status"] == "expired"
