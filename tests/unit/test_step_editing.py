"""Editing a pipeline's steps as an operator does every day, on SQLite and MariaDB: reordering
(stages move whole, renumbered in one transaction), save-and-add-another / save-and-continue,
returning to the pipeline, breadcrumbs by name, the flow's lanes and a message naming each action."""
from __future__ import annotations

import asyncio
import re

import pytest
from publishing import T, make_pipeline, on_own_engine
from sqlalchemy import func, select

STEPS = "/pipeline_core/pipeline_steps"
PIPES = "/pipeline_core/pipelines"
FOUR = [{"seq": 1, "name": "a"}, {"seq": 2, "name": "b", "parallel_group": "g"},
        {"seq": 2, "name": "c", "parallel_group": "g"}, {"seq": 3, "name": "d"}]


@pytest.fixture
async def direct(admin, db_url):
    c = on_own_engine(admin.ctx, db_url)
    yield c
    await c.db.dispose()


async def order_of(ctx, pid: str) -> list[tuple[int, str]]:
    st = T(ctx, "pipeline_steps")
    async with ctx.db.connect() as conn:
        rows = await conn.execute(select(st.c.seq, st.c.name).where(st.c.pipeline_id == pid)
                                  .order_by(st.c.seq, st.c.name))
        return [tuple(r) for r in rows]


async def step_ids(ctx, pid: str) -> dict[str, str]:
    st = T(ctx, "pipeline_steps")
    async with ctx.db.connect() as conn:
        return {r.name: r.id for r in await conn.execute(select(st.c.id, st.c.name).where(st.c.pipeline_id == pid))}


def notice(html: str) -> list[str]:
    return re.findall(r'<p class="flash ok" role="status">([^<]*)</p>', html)


async def test_moving_a_step_moves_its_stage_and_renumbers(admin, direct):
    pid = await make_pipeline(direct, FOUR)
    ids = await step_ids(direct, pid)

    # d up: it swaps with the parallel stage b+c, which moves as one
    r = await admin.form(f"{STEPS}/{ids['d']}/move", {"dir": "up"})
    assert r.status_code == 303 and r.headers["location"] == f"{PIPES}/{pid}#row-{ids['d']}"
    assert await order_of(direct, pid) == [(1, "a"), (2, "d"), (3, "b"), (3, "c")]
    page = await admin.client.get(f"{PIPES}/{pid}")
    assert notice(page.text) == ["已将步骤「d」移到第 2 位。"]

    # the JSON API moves to a position; moving past the ends stays at the end
    moved = await admin.api("POST", f"/api/pipeline_core/pipeline_steps/{ids['c']}/move", json={"to": 1})
    assert moved.status_code == 200 and moved.json()["seq"] == 1
    assert await order_of(direct, pid) == [(1, "b"), (1, "c"), (2, "a"), (3, "d")]
    assert (await admin.api("POST", f"/api/pipeline_core/pipeline_steps/{ids['d']}/move",
                            json={"dir": "down"})).json()["seq"] == 3

    # every renumbered row is audited as an edit; bad input is a 422 in the one shape
    audit = T(direct, "audit_log")
    async with direct.db.connect() as conn:
        edits = (await conn.execute(select(func.count()).select_from(audit).where(
            audit.c.table_name == "pipeline_steps", audit.c.action == "update"))).scalar_one()
    assert edits == 3 + 4  # d, b, c; then b, c, a, d
    for body in ({"dir": "sideways"}, {"to": "x"}, {"to": -1}):
        bad = await admin.api("POST", f"/api/pipeline_core/pipeline_steps/{ids['a']}/move", json=body)
        assert bad.status_code == 422 and bad.json()["error"]["fields"], body
    assert await order_of(direct, pid) == [(1, "b"), (1, "c"), (2, "a"), (3, "d")]


async def test_concurrent_moves_leave_the_numbers_dense(admin, direct):
    pid = await make_pipeline(direct, [{"seq": n, "name": f"s{n}"} for n in range(1, 7)])
    ids = list((await step_ids(direct, pid)).values())
    results = await asyncio.gather(*(
        admin.api("POST", f"/api/pipeline_core/pipeline_steps/{ids[i % 6]}/move", json={"dir": ("up", "down")[i % 2]})
        for i in range(12)))
    assert {r.status_code for r in results} <= {200, 503}, [r.text for r in results if r.status_code != 200]
    assert sorted(seq for seq, _ in await order_of(direct, pid)) == [1, 2, 3, 4, 5, 6]


async def test_the_pipeline_page_offers_moves_and_draws_lanes(admin, direct):
    pid = await make_pipeline(direct, FOUR)
    ids = await step_ids(direct, pid)
    page = (await admin.client.get(f"{PIPES}/{pid}")).text
    assert f'action="{STEPS}/{ids["a"]}/move"' in page and 'value="up"' in page and 'value="down"' in page
    flow = page[page.index('<section class="flow"'):]
    flow = flow[:flow.index("</section>")]
    stages = re.findall(r'<li class="stage( parallel)?">.*?</li>', flow, re.S)
    assert stages == ["", " parallel", ""]
    assert "并行 · g" in flow and flow.index(">b<") < flow.index(">c<") < flow.index(">d<")


async def test_saving_a_step_returns_to_its_pipeline_with_a_message(admin, direct):
    pid = await make_pipeline(direct, [])
    blank = await admin.client.get(f"{STEPS}/new?pipeline_id={pid}&_parent=pipeline_id")
    assert blank.status_code == 200 and 'name="_next" value="add"' in blank.text
    crumbs = re.search(r'<nav class="crumbs".*?</nav>', blank.text, re.S).group(0)
    assert ">产线</a>" in crumbs and f">Pipeline {pid[-8:]}</a>" in crumbs and ">步骤</a>" in crumbs

    step = {"pipeline_id": pid, "seq": "1", "name": "first", "step_type": "model", "_parent": "pipeline_id"}
    r = await admin.form(f"{STEPS}/new", {**step, "_next": "add"})
    assert r.status_code == 303 and r.headers["location"] == f"{STEPS}/new?pipeline_id={pid}&_parent=pipeline_id"
    again = await admin.client.get(r.headers["location"])
    assert notice(again.text) == ["已新增步骤「first」。"] and f'value="{pid}"' in again.text

    r = await admin.form(f"{STEPS}/new", {**step, "seq": "2", "name": "second"})
    sid = (await step_ids(direct, pid))["second"]
    assert r.status_code == 303 and r.headers["location"] == f"{PIPES}/{pid}#row-{sid}"
    page = await admin.client.get(r.headers["location"])
    assert notice(page.text) == ["已新增步骤「second」。"]
    assert notice((await admin.client.get(r.headers["location"])).text) == []  # shown once

    r = await admin.form(f"{STEPS}/{sid}/edit", {**step, "seq": "2", "name": "second!", "_next": "continue"})
    assert r.status_code == 303 and r.headers["location"] == f"{STEPS}/{sid}/edit"
    assert notice((await admin.client.get(r.headers["location"])).text) == ["已保存步骤「second!」。"]

    record = (await admin.client.get(f"{STEPS}/{sid}")).text
    crumbs = re.search(r'<nav class="crumbs".*?</nav>', record, re.S).group(0)
    assert re.findall(r">([^<>]+)</a>", crumbs) == ["产线", f"Pipeline {pid[-8:]}", "步骤"]


async def test_actions_say_what_happened_in_the_language_chosen(admin, direct):
    pid = await make_pipeline(direct, [{"seq": 1, "name": "ocr", "model": "m"}])
    name = f"Pipeline {pid[-8:]}"
    r = await admin.form(f"{PIPES}/{pid}/publish", {"note": "one"})
    assert notice((await admin.client.get(r.headers["location"])).text) == [f"已发布「{name}」的版本 1。"]
    await admin.form(f"{PIPES}/{pid}/publish", {"note": "two"})
    await admin.client.get(f"{PIPES}/{pid}")
    admin.client.cookies.set("lang", "en")
    r = await admin.form(f"{PIPES}/{pid}/rollback", {"version_no": "1"})
    assert notice((await admin.client.get(r.headers["location"])).text) == [
        f"Rolled “{name}” back to version 1 (new version 3)."]


async def test_a_forged_message_is_not_shown(admin, direct):
    pid = await make_pipeline(direct, [])
    admin.client.cookies.set("notice", "eyJrIjoiZGVsZXRlZCIsInAiOnsibiI6OTl9fQ==.0123456789abcdef0123456789abcdef")
    page = await admin.client.get(f"{PIPES}/{pid}")
    assert page.status_code == 200 and notice(page.text) == []
