"""Publishing pipelines: validation that lists every problem, immutable versions, and the diff
between two versions. Every database test runs on SQLite and MariaDB (the `ctx` fixture)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from publishing import ACTOR, STAMPS, TWO_STEPS, add_price, make_pipeline, rows, steps_of

from app.core.clock import utcnow
from app.crud.rows import CrudError
from modules.pipeline_core import publish as svc

# ---- publish --------------------------------------------------------------------------------

async def test_publish_writes_version_moves_pointer_and_audits(ctx):
    pid = await make_pipeline(ctx, TWO_STEPS)
    v = await svc.publish(ctx, pid, ACTOR, "  first  ")
    assert (v["version_no"], v["status"], v["note"]) == (1, "published", "first")
    assert v["published_by"] == ACTOR.user_id
    assert [s["name"] for s in v["snapshot"]["steps"]] == ["ocr", "sum"]
    assert v["snapshot"]["pipeline"]["id"] == pid
    assert not {"created_at", "updated_at", "published_version"} & set(v["snapshot"]["pipeline"])
    assert not set(STAMPS) & set(v["snapshot"]["steps"][0])
    assert v["snapshot"]["steps"][0]["config"] == '{"lang": "zh"}'
    (p,) = await rows(ctx, "pipelines", id=pid)
    assert p["published_version"] == 1
    (stored,) = await rows(ctx, "pipeline_versions", pipeline_id=pid)
    assert stored["snapshot"] == svc.canonical(v["snapshot"])
    log = await rows(ctx, "audit_log", action="publish")
    assert {(a["table_name"], a["row_id"]) for a in log} == {("pipelines", pid),
                                                              ("pipeline_versions", v["id"])}
    moved = next(a for a in log if a["table_name"] == "pipelines")
    assert json.loads(moved["after_json"])["published_version"] == 1

    v2 = await svc.publish(ctx, pid, ACTOR)
    assert v2["version_no"] == 2 and v2["note"] is None
    statuses = {r["version_no"]: r["status"] for r in await rows(ctx, "pipeline_versions", pipeline_id=pid)}
    assert statuses == {1: "superseded", 2: "published"}
    assert (await rows(ctx, "pipelines", id=pid))[0]["published_version"] == 2


async def test_parallel_steps_and_draft_status_publish(ctx):
    pid = await make_pipeline(ctx, [
        {"seq": 1, "name": "a", "model": None, "config": ""},
        {"seq": 2, "name": "b1", "model": "m", "parallel_group": "fan"},
        {"seq": 2, "name": "b2", "model": "m", "parallel_group": "fan"},
        {"seq": 3, "name": "c", "model": None, "parallel_group": "solo"},
    ], status="draft")
    v = await svc.publish(ctx, pid, ACTOR)
    assert [(s["seq"], s["name"]) for s in v["snapshot"]["steps"]] == [
        (1, "a"), (2, "b1"), (2, "b2"), (3, "c")]


BAD_CASES = {
    "no steps": ([], "active", {"steps"}),
    "gap in seq": ([{"seq": 1, "name": "a"}, {"seq": 3, "name": "b"}], "active", {"seq"}),
    "seq not from 1": ([{"seq": 2, "name": "a"}, {"seq": 3, "name": "b"}], "active", {"seq"}),
    "serial step not alone": ([{"seq": 1, "name": "a"}, {"seq": 1, "name": "b", "parallel_group": "g"}],
                              "active", {"parallel_group.1"}),
    "two groups at one seq": ([{"seq": 1, "name": "a", "parallel_group": "g"},
                               {"seq": 1, "name": "b", "parallel_group": "h"}],
                              "active", {"parallel_group.1"}),
    "bad JSON config": ([{"seq": 1, "name": "a", "config": "{nope"}], "active", {"config.a"}),
    "unpriced model": ([{"seq": 1, "name": "a", "model": "m1"}], "active", {"pricing.a"}),
    "archived": ([{"seq": 1, "name": "a"}], "archived", {"status"}),
    "disabled": ([{"seq": 1, "name": "a"}], "disabled", {"status"}),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
async def test_each_invalid_pipeline_is_refused(ctx, case):
    steps, status, keys = BAD_CASES[case]
    pid = await make_pipeline(ctx, steps, status=status, price=case != "unpriced model")
    with pytest.raises(CrudError) as exc:
        await svc.publish(ctx, pid, ACTOR)
    assert exc.value.status == 422
    assert set(exc.value.errors) == keys
    for key in keys:
        assert key in exc.value.message
    assert await rows(ctx, "pipeline_versions", pipeline_id=pid) == []
    assert (await rows(ctx, "pipelines", id=pid))[0]["published_version"] is None


async def test_every_problem_is_listed_at_once(ctx):
    pid = await make_pipeline(ctx, [
        {"seq": 2, "name": "a", "model": "m1", "config": "[1,"},
        {"seq": 2, "name": "b", "model": None},
        {"seq": 4, "name": "c", "model": "m2", "config": "not json"},
    ], status="archived", price=False)
    with pytest.raises(CrudError) as exc:
        await svc.publish(ctx, pid, ACTOR)
    assert set(exc.value.errors) == {"status", "seq", "parallel_group.2", "config.a", "config.c",
                                     "pricing.a", "pricing.c"}
    assert "missing 1, 3" in exc.value.errors["seq"]
    assert exc.value.message.startswith("cannot publish: 7 problems (status, seq, ")


async def test_pricing_must_cover_the_step_now(ctx):
    pid = await make_pipeline(ctx, [{"seq": 1, "name": "a", "model": "m1"},
                                    {"seq": 2, "name": "b", "model": "m2"}], price=False)
    a, b = sorted(await steps_of(ctx, pid), key=lambda s: s["seq"])
    now = utcnow()
    # None of these cover anything now.
    await add_price(ctx, pid, model="m1", status="inactive")
    await add_price(ctx, pid, model="m1", effective_to=now - timedelta(seconds=1))
    await add_price(ctx, pid, model="m1", effective_from=now + timedelta(hours=1))
    await add_price(ctx, pid, step_id=b["id"], model="m1")
    await add_price(ctx, pid, step_id=a["id"], model="other")
    await add_price(ctx, pid, model="m1")  # billing never uses a model price without a step
    other = await make_pipeline(ctx, [{"seq": 1, "name": "z"}], price=False)
    await add_price(ctx, other)
    with pytest.raises(CrudError) as exc:
        await svc.publish(ctx, pid, ACTOR)
    assert set(exc.value.errors) == {"pricing.a", "pricing.b"}
    assert '"m1"' in exc.value.errors["pricing.a"]
    # A price for the step and any model covers a; one for the step and its model covers b.
    await add_price(ctx, pid, step_id=a["id"], effective_to=now + timedelta(days=30))
    await add_price(ctx, pid, step_id=b["id"], model="m2")
    assert (await svc.publish(ctx, pid, ACTOR))["version_no"] == 1
    # Billing takes the most specific row; one without the numbers its mode needs prices nothing.
    await add_price(ctx, pid, step_id=a["id"], model="m1", unit_price=None)
    with pytest.raises(CrudError) as exc:
        await svc.publish(ctx, pid, ACTOR)
    assert set(exc.value.errors) == {"pricing.a"}


async def test_unknown_pipeline_and_bad_note(ctx):
    with pytest.raises(CrudError) as exc:
        await svc.publish(ctx, "nope", ACTOR)
    assert exc.value.status == 404
    pid = await make_pipeline(ctx, TWO_STEPS)
    for note in ("x" * 501, 5):
        with pytest.raises(CrudError) as exc:
            await svc.publish(ctx, pid, ACTOR, note)
        assert exc.value.status == 422 and "note" in exc.value.errors


# ---- diffs ----------------------------------------------------------------------------------

def test_diff_names_added_removed_and_changed_fields():
    old = {"pipeline": {"id": "p", "name": "A"}, "steps": [
        {"id": "1", "name": "a", "seq": 1, "config": None}, {"id": "2", "name": "b", "seq": 2}]}
    new = {"pipeline": {"id": "p", "name": "B"}, "steps": [
        {"id": "1", "name": "a", "seq": 1, "config": '{"k": 1}'}, {"id": "3", "name": "c", "seq": 2}]}
    d = svc.diff_snapshots(old, new)
    assert d["pipeline"] == [("name", "A", "B")]
    assert [s["name"] for s in d["added"]] == ["c"] and [s["name"] for s in d["removed"]] == ["b"]
    assert [(c["step"]["name"], c["fields"]) for c in d["changed"]] == [("a", [("config", None, '{"k": 1}')])]
    assert svc.diff_snapshots(new, new) == {"pipeline": [], "added": [], "removed": [], "changed": []}
