"""Idempotency and batching of distributor calls, in-process on SQLite and MariaDB: one request_id
is one call, and each call of a batch is decided on its own (the world: `dist_world`)."""
from __future__ import annotations

import asyncio
import random
import secrets

from dist_world import (
    World,
    admit,
    assert_counters_match_usage,
    assert_error,
    clear_of_period_end,
    counters,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    link,
    make_distributor,
    make_pipeline,
    make_world,
    usage_rows,
)
from sqlalchemy import func, select

from app.core.clock import utcnow
from modules.pipeline_dist import admission
from modules.pipeline_dist.limits import DistError, periods
from modules.pipeline_dist.stores import open_store
from conftest import every_database

pytestmark = every_database

# ---- idempotency ---------------------------------------------------------------------------------------

async def test_same_request_id_is_one_call(dist_admin):
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, dist={"daily_quota": 10}, capacity={"max_concurrency": 10})
    first = await admit(w, "same", units=2)
    second = await admit(w, "same", units=5)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    a, b = first.json(), second.json()
    assert {k: v for k, v in a.items() if k != "quotas"} == {k: v for k, v in b.items() if k != "quotas"}
    assert len(await usage_rows(w)) == 1
    day = periods(w.ctx.settings.business_timezone, utcnow())[0]
    assert (await counters(w))[f"dist:{w.distributor_id}|{day}"] == 1
    # the same request_id for another pipeline is a conflict, not a second call
    other = await make_pipeline(dist_admin, "other")
    await link(dist_admin, w.distributor_id, other)
    assert_error(await admit(w, "same", code="other"), 409)


async def test_same_request_id_race(dist_admin):
    w = await make_world(dist_admin, dist={"daily_quota": 10}, capacity={"max_concurrency": 10})
    results = await asyncio.gather(*[admit(w, "twin") for _ in range(6)])
    assert sorted(r.status_code for r in results) == [200] * 5 + [201], [r.text for r in results]
    assert len({r.json()["call_id"] for r in results}) == 1
    assert len(await usage_rows(w)) == 1
    await assert_counters_match_usage(w)


def batch_sizes(store) -> list[int]:
    """Sizes of the batches a MariaDB store sends from now on (empty elsewhere: no batches)."""
    sizes: list[int] = []
    for batcher in (getattr(store, "admissions", None), getattr(store, "finishes", None)):
        if batcher is not None:
            run = batcher.run

            async def recorded(items, run=run):
                sizes.append(len(items))
                return await run(items)

            batcher.run = recorded
    return sizes


async def test_each_call_of_a_batch_is_decided_on_its_own(dist_admin):
    """Simultaneous admissions on one worker: on MariaDB they share batches; each is still decided
    alone: the quota admits exactly its room, the rest are 429s, twins are one call."""
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, link_fields={"daily_quota": 5}, capacity={"max_concurrency": 100})
    settings = w.ctx.settings

    async def attempt(request_id: str) -> tuple[str, str]:
        try:
            got = await admission.admit(w.store, settings, distributor_id=w.distributor_id, code=w.code,
                                  request_id=request_id, units=1, client_ip=None)
        except DistError as exc:
            return request_id, f"{exc.status} {exc.limit.name if exc.limit else ''}"
        return request_id, ("replayed " if got.replayed else "admitted ") + got.call["id"]

    # today's counters exist and this worker's context is cached: the usual case, batched
    assert (await attempt("warm"))[1].startswith("admitted")
    sizes = batch_sizes(w.store)
    outcomes = await asyncio.gather(*[attempt(f"r{i}") for i in range(10)], attempt("twin"), attempt("twin"))
    admitted = [o for _, o in outcomes if o.startswith("admitted")]
    refused = [o for _, o in outcomes if o.startswith("429")]
    assert len(admitted) == 4 and all(o == "429 link.daily" for o in refused), outcomes
    twins = [o for rid, o in outcomes if rid == "twin"]
    if twins[0].startswith("429"):
        assert twins == ["429 link.daily"] * 2
    else:
        assert sorted(o.split()[0] for o in twins) == ["admitted", "replayed"]
        assert twins[0].split()[1] == twins[1].split()[1]  # one call, the same call_id
    assert len(await usage_rows(w)) == 5
    await assert_counters_match_usage(w)
    if w.engine.dialect.name in ("mysql", "mariadb"):  # the raw store batches; SQLAlchemy's does not
        assert max(sizes) > 1, sizes  # the admissions did share batches

    # finishing each call twice at once, and another distributor's call: each settles once
    calls = [o.split()[1] for _, o in outcomes if o.startswith("admitted")]
    stranger, _ = await make_distributor(dist_admin)
    sizes.clear()

    async def settle(call_id: str, distributor_id: str = w.distributor_id) -> str:
        try:
            row = await admission.finish(w.store, distributor_id=distributor_id, call_id=call_id, status="succeeded",
                                   units=None)
        except DistError as exc:
            return str(exc.status)
        return row["status"]

    results = await asyncio.gather(*[settle(c) for c in calls * 2], settle(calls[0], stranger))
    assert results == ["succeeded"] * 8 + ["404"]
    running = [r for r in await usage_rows(w) if r["status"] == "running"]
    assert [r["request_id"] for r in running] == ["warm"]
    await assert_counters_match_usage(w)
    if w.engine.dialect.name in ("mysql", "mariadb"):  # the raw store batches; SQLAlchemy's does not
        assert max(sizes) > 1, sizes


async def test_batches_on_overlapping_counters_do_not_deadlock(dist_admin):
    """Two workers, two distributors each on two pipelines, calls interleaved at random: batches
    lock overlapping counters in one order, so no call ends as a deadlock victim (503 busy) and
    every counter still equals its recount."""
    await clear_of_period_end(dist_admin.ctx.settings)
    settings = dist_admin.ctx.settings
    pipelines = [await make_pipeline(dist_admin, code) for code in ("pa", "pb")]
    distributors = [(await make_distributor(dist_admin))[0] for _ in range(2)]
    for d in distributors:
        for p in pipelines:
            await link(dist_admin, d, p)
    stores = [dist_admin.store, await open_store(settings, dist_admin.engine, dist_admin.ctx.catalog)]
    pairs = [(d, code) for d in distributors for code in ("pa", "pb")]
    rng = random.Random(5)
    answers: list[str] = []

    async def caller(n: int) -> None:
        for i in range(12):
            store, (d, code) = rng.choice(stores), rng.choice(pairs)
            try:
                call = await admission.admit(store, settings, distributor_id=d, code=code, request_id=f"c{n}-{i}",
                                       units=1, client_ip=None)
                row = await admission.finish(rng.choice(stores), distributor_id=d, call_id=call.call["id"],
                                       status="succeeded", units=None)
                answers.append(row["status"])
            except DistError as exc:
                answers.append(f"{exc.status} {exc.message}")

    try:
        for d, code in pairs:  # today's counters exist, every context is cached on both stores
            for store in stores:
                await admission.admit(store, settings, distributor_id=d, code=code, request_id=secrets.token_hex(8),
                                units=1, client_ip=None)
        await asyncio.gather(*[caller(n) for n in range(40)])
    finally:
        await stores[1].close()
    assert answers == ["succeeded"] * 480, sorted(set(answers))
    t = dist_admin.ctx.catalog.tables["pipeline_usage_log"].table
    for d in distributors:
        w = World(dist_admin, "pa", pipelines[0], d, "", None, "")
        async with dist_admin.engine.connect() as conn:
            calls = (await conn.execute(select(func.count()).where(t.c.distributor_id == d))).scalar_one()
        day = periods(settings.business_timezone, utcnow())[0]
        assert (await counters(w))[f"dist:{d}|{day}"] == calls
