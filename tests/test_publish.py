"""Publishing pipelines: validation that lists every problem, immutable versions, roll back that
restores steps exactly, publishes that race without duplicate numbers, and the HTML/JSON actions.
Every database test runs on SQLite and MariaDB (the `db_url` fixture)."""
from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from app.core.catalog import load_catalog
from app.core.clock import utcnow
from app.core.context import AppContext
from app.core.db import make_engine
from app.core.ids import new_id
from app.crud.rows import Actor, CrudError
from modules.pipeline_core import publish as svc

ROOT = Path(__file__).resolve().parent.parent
ACTOR = Actor("u-publisher", "publisher", "127.0.0.1")
STAMPS = ("created_at", "updated_at")


def _ctx(catalog, url: str) -> AppContext:
    return AppContext(settings=None, catalog=catalog, db=make_engine(url))  # type: ignore[arg-type]


@pytest.fixture
async def ctx(db_url):
    """The app's catalog on a fresh database with every table, no HTTP layer."""
    catalog = load_catalog(ROOT / "build")
    c = _ctx(catalog, db_url)
    async with c.db.begin() as conn:
        await conn.run_sync(catalog.metadata.create_all)
    yield c
    await c.db.dispose()


def T(ctx, name):  # noqa: N802 - short accessor for a table
    return ctx.catalog.tables[name].table


async def make_pipeline(ctx, steps: list[dict], status: str = "active", price: bool = True) -> str:
    """A pipeline with `steps` (seq, name, and anything else) and, by default, a pipeline-wide price
    for any model, effective since yesterday."""
    pid, now = new_id(), utcnow()
    async with ctx.db.begin() as conn:
        await conn.execute(insert(T(ctx, "pipelines")).values(
            id=pid, code=f"p{pid[-8:]}", name=f"Pipeline {pid[-8:]}", status=status, owner="u1",
            created_at=now, updated_at=now, created_by="u1"))
        for s in steps:
            await conn.execute(insert(T(ctx, "pipeline_steps")).values(**{
                "id": new_id(), "pipeline_id": pid, "step_type": "model", "timeout_s": 60, "retries": 0,
                "created_at": now, "updated_at": now, **s}))
        if price:
            await add_price(ctx, pid, conn=conn)
    return pid


async def add_price(ctx, pid: str, conn=None, **over) -> None:
    values = {"id": new_id(), "pipeline_id": pid, "step_id": None, "model": None, "billing_unit": "call",
              "price_mode": "unit", "unit_price": "0.010000", "currency": "CNY", "status": "active",
              "effective_from": utcnow() - timedelta(days=1), "effective_to": None, **over}
    if conn is not None:
        await conn.execute(insert(T(ctx, "pipeline_pricing")).values(**values))
    else:
        async with ctx.db.begin() as c:
            await c.execute(insert(T(ctx, "pipeline_pricing")).values(**values))


async def rows(ctx, table: str, **where) -> list[dict]:
    t = T(ctx, table)
    async with ctx.db.connect() as conn:
        result = await conn.execute(select(t).where(*[t.c[k] == v for k, v in where.items()]))
        return [dict(r._mapping) for r in result]


async def steps_of(ctx, pid: str) -> list[dict]:
    return sorted(await rows(ctx, "pipeline_steps", pipeline_id=pid), key=lambda s: s["id"])


def without_stamps(steps: list[dict]) -> list[dict]:
    return [{k: v for k, v in s.items() if k not in STAMPS} for s in steps]


TWO_STEPS = [{"seq": 1, "name": "ocr", "model": "ocr-v1", "config": '{"lang": "zh"}'},
             {"seq": 2, "name": "sum", "model": "llm-x", "config": None}]


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
    others = [_ctx(ctx.catalog, db_url) for _ in range(4)]
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


# ---- HTTP: JSON actions, HTML buttons, the versions block ------------------------------------

API = "/api/pipeline_core/pipelines"
PAGE = "/pipeline_core/pipelines"


@pytest.fixture
async def direct(admin, db_url):
    """Our own engine on the app's database: the app's engine belongs to the test client's loop."""
    c = _ctx(admin.ctx.catalog, db_url)
    yield c
    await c.db.dispose()


async def test_api_publish_and_rollback(admin, direct):
    ctx = direct
    pid = await make_pipeline(ctx, TWO_STEPS)
    r = await admin.api("POST", f"{API}/{pid}/publish", json={"note": "via api"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version_no"] == 1 and body["note"] == "via api" and isinstance(body["snapshot"], dict)
    assert (await admin.api("GET", f"{API}/{pid}")).json()["published_version"] == 1
    log = await rows(ctx, "audit_log", action="publish", table_name="pipelines")
    assert log[0]["username"] == "admin"

    r = await admin.api("POST", f"{API}/{pid}/rollback", json={"version_no": 9})
    assert r.status_code == 404 and "version 9" in r.json()["error"]["message"]
    r = await admin.api("POST", f"{API}/{pid}/rollback", json={"version_no": 1})
    assert r.status_code == 200 and r.json()["version_no"] == 2 and r.json()["note"] == "rollback to 1"

    bad = await make_pipeline(ctx, [{"seq": 2, "name": "a", "config": "{"}], status="archived")
    r = await admin.api("POST", f"{API}/{bad}/publish", json={})
    assert r.status_code == 422
    err = r.json()["error"]
    assert set(err["fields"]) == {"status", "seq", "config.a"}
    assert "archived" in err["fields"]["status"] and "JSON" in err["fields"]["config.a"]
    assert err["message"].startswith("cannot publish: 3 problems")
    # Versions are never edited: their routes are read-only.
    vid = body["id"]
    for method in ("PUT", "PATCH", "DELETE"):
        assert (await admin.api(method, f"/api/pipeline_core/pipeline_versions/{vid}", json={"note": "x"})
                ).status_code in (404, 405)


async def test_html_buttons_publish_and_roll_back(admin, direct):
    ctx = direct
    pid = await make_pipeline(ctx, [{"seq": 1, "name": "<b>ocr</b>", "model": "m", "config": '{"a": "<i>"}'}])
    page = await admin.client.get(f"{PAGE}/{pid}")
    assert page.status_code == 200
    assert f'action="{PAGE}/{pid}/publish"' in page.text and "<b>ocr</b>" not in page.text

    r = await admin.form(f"{PAGE}/{pid}/publish", {"note": "first <note>"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"{PAGE}/{pid}")
    st = T(ctx, "pipeline_steps")
    async with ctx.db.begin() as conn:
        await conn.execute(update(st).where(st.c.pipeline_id == pid).values(config='{"a": "<u>"}', seq=1))
    await admin.form(f"{PAGE}/{pid}/publish", {"note": "second"})

    page = (await admin.client.get(f"{PAGE}/{pid}")).text
    assert 'id="version-1"' in page and 'id="version-2"' in page
    assert "<td>admin</td>" in page  # the publisher by name, not by user id
    assert "first &lt;note&gt;" in page and "<note>" not in page
    assert "&lt;b&gt;ocr&lt;/b&gt;" in page and "&lt;u&gt;" in page and "<u>" not in page  # the diff, escaped
    # A rollback button for the older version only, posting its number.
    forms = re.findall(r'action="[^"]*/rollback".*?name="version_no" value="(\d+)"', page, re.S)
    assert forms == ["1"]

    r = await admin.form(f"{PAGE}/{pid}/rollback", {"version_no": "1"})
    assert r.status_code == 303
    page = (await admin.client.get(f"{PAGE}/{pid}")).text
    assert 'id="version-3"' in page and "rollback to 1" in page
    assert (await steps_of(ctx, pid))[0]["config"] == '{"a": "<i>"}'

    # A refused publish shows the problems on the record page.
    bad = await make_pipeline(ctx, [], status="archived")
    r = await admin.form(f"{PAGE}/{bad}/publish", {})
    assert r.status_code == 422 and "archived" in r.text and "no steps" in r.text
    # The toolbar's bare rollback (no version chosen) explains itself.
    r = await admin.form(f"{PAGE}/{pid}/rollback", {})
    assert r.status_code == 422 and "version" in r.text
