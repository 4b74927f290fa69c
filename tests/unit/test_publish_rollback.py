"""Rolling back restores steps exactly and is validated like a publish; publishes that race get
consecutive version numbers without duplicates. On SQLite and MariaDB (the `ctx` fixture)."""
from __future__ import annotations

import asyncio

import pytest
from publishing import ACTOR, T, TWO_STEPS, add_price, make_pipeline, on_own_engine, rows, steps_of, without_stamps
from sqlalchemy import delete, insert, update

from app.core.ids import new_id
from app.crud.rows import CrudError
from modules.pipeline_core import publish as svc
from conftest import every_database

pytestmark = every_database

# ---- roll back ------------------------------------------------------------------------------

async def test_rollback_restores_steps_exactly_and_publishes_a_new_version(ctx):
    pid = await make_pipeline(ctx, [
        {"seq": 1, "name": "ocr", "model": "ocr-v1", "config": '{"lang": "zh"}', "created_by": "u1"},
        {"seq": 2, "name": "sum", "model": "llm-x", "parallel_group": "g", "retries": 2},
        {"seq": 2, "name": "tag", "model": None, "parallel_group": "g", "timeout_s": 5},
    ])
    at_v1 = await steps_of(ctx, pid)
    ocr, sm, tag = sorted(at_v1, key=lambda s: s["name"])
    await add_price(ctx, pid, step_id=sm["id"], model="llm-x", unit_price="0.5")
    v1 = await svc.publish(ctx, pid, ACTOR, "v1")

    # Edit everything: change fields, swap two names, delete a step, add one.
    st = T(ctx, "pipeline_steps")
    async with ctx.db.begin() as conn:
        await conn.execute(update(st).where(st.c.id == ocr["id"]).values(name="tmp"))
        await conn.execute(update(st).where(st.c.id == sm["id"]).values(
            name="ocr", config='{"max": 100}', retries=5, parallel_group=None))
        await conn.execute(update(st).where(st.c.id == ocr["id"]).values(name="sum", model="ocr-v2"))
        await conn.execute(delete(st).where(st.c.id == tag["id"]))
        await conn.execute(insert(st).values(id=new_id(), pipeline_id=pid, seq=3, name="extra",
                                             step_type="http", timeout_s=60, retries=0))
    v2 = await svc.publish(ctx, pid, ACTOR, "v2")
    assert v2["version_no"] == 2

    v3 = await svc.rollback(ctx, pid, 1, ACTOR)
    assert (v3["version_no"], v3["note"], v3["status"]) == (3, "rollback to 1", "published")
    assert v3["snapshot"] == v1["snapshot"]
    assert without_stamps(await steps_of(ctx, pid)) == without_stamps(at_v1)
    assert (await rows(ctx, "pipelines", id=pid))[0]["published_version"] == 3
    statuses = {r["version_no"]: r["status"] for r in await rows(ctx, "pipeline_versions", pipeline_id=pid)}
    assert statuses == {1: "superseded", 2: "superseded", 3: "published"}
    # The surviving step kept its step-level price (restoring does not delete and re-insert it).
    prices = await rows(ctx, "pipeline_pricing", pipeline_id=pid)
    assert [p["step_id"] for p in prices if p["step_id"]] == [sm["id"]]
    assert {a["table_name"] for a in await rows(ctx, "audit_log", action="rollback")} == {
        "pipelines", "pipeline_versions", "pipeline_steps"}
    # Rolling forward again is just another rollback.
    v4 = await svc.rollback(ctx, pid, 2, ACTOR)
    assert v4["version_no"] == 4 and v4["snapshot"] == v2["snapshot"]
    assert [(s["seq"], s["name"]) for s in sorted(await steps_of(ctx, pid), key=svc.step_order)] == [
        (1, "sum"), (2, "ocr"), (3, "extra")]


async def test_rollback_to_unknown_or_bad_version(ctx):
    pid = await make_pipeline(ctx, TWO_STEPS)
    await svc.publish(ctx, pid, ACTOR)
    with pytest.raises(CrudError) as exc:
        await svc.rollback(ctx, pid, 7, ACTOR)
    assert exc.value.status == 404 and "version 7" in exc.value.message
    for bad in (None, "", "x", 0, True):
        with pytest.raises(CrudError) as exc:
            await svc.rollback(ctx, pid, bad, ACTOR)
        assert exc.value.status == 422 and "version_no" in exc.value.errors
    assert len(await rows(ctx, "pipeline_versions", pipeline_id=pid)) == 1


async def test_rollback_is_validated_like_a_publish(ctx):
    pid = await make_pipeline(ctx, TWO_STEPS)
    await svc.publish(ctx, pid, ACTOR)
    pr = T(ctx, "pipeline_pricing")
    async with ctx.db.begin() as conn:
        await conn.execute(update(pr).where(pr.c.pipeline_id == pid).values(status="inactive"))
    before = await steps_of(ctx, pid)
    with pytest.raises(CrudError) as exc:
        await svc.rollback(ctx, pid, 1, ACTOR)
    assert exc.value.status == 422 and set(exc.value.errors) == {"pricing.ocr", "pricing.sum"}
    assert await steps_of(ctx, pid) == before


# ---- races ----------------------------------------------------------------------------------

async def _race(ctxs: list, pid: str) -> list[int]:
    results = await asyncio.gather(*[svc.publish(c, pid, ACTOR, f"racer {i}") for i, c in enumerate(ctxs)])
    return sorted(v["version_no"] for v in results)


async def _assert_consecutive(ctx, pid: str, n: int) -> None:
    versions = await rows(ctx, "pipeline_versions", pipeline_id=pid)
    assert sorted(v["version_no"] for v in versions) == list(range(1, n + 1))
    assert [v["version_no"] for v in versions if v["status"] == "published"] == [n]
    assert (await rows(ctx, "pipelines", id=pid))[0]["published_version"] == n


async def test_racing_publishes_on_one_engine(ctx):
    pid = await make_pipeline(ctx, TWO_STEPS)
    assert await _race([ctx, ctx], pid) == [1, 2]
    assert await _race([ctx] * 5, pid) == [3, 4, 5, 6, 7]
    await _assert_consecutive(ctx, pid, 7)


async def test_racing_publishes_on_separate_connections(ctx, db_url):
    """Separate engines: each racer has its own connection (and, on MariaDB, its own session)."""
    pid = await make_pipeline(ctx, TWO_STEPS)
    others = [on_own_engine(ctx, db_url) for _ in range(4)]
    try:
        assert await _race(others, pid) == [1, 2, 3, 4]
    finally:
        for c in others:
            await c.db.dispose()
    await _assert_consecutive(ctx, pid, 4)


async def test_version_number_clash_retries_once(ctx, monkeypatch):
    """The unique index is the backstop: a stale number (a lock that did not hold) is retried."""
    pid = await make_pipeline(ctx, TWO_STEPS)
    await svc.publish(ctx, pid, ACTOR)
    real, calls = svc.next_version_no, []

    async def stale_once(c, conn, p):
        calls.append(p)
        return 1 if len(calls) == 1 else await real(c, conn, p)

    monkeypatch.setattr(svc, "next_version_no", stale_once)
    assert (await svc.publish(ctx, pid, ACTOR))["version_no"] == 2
    assert len(calls) == 2
    monkeypatch.setattr(svc, "next_version_no", lambda c, conn, p: asyncio.sleep(0, 1))
    with pytest.raises(CrudError) as exc:
        await svc.publish(ctx, pid, ACTOR)
    assert exc.value.status == 409
    await _assert_consecutive(ctx, pid, 2)
