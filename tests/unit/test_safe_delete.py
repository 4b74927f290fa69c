"""Deletes respect what depends on a row (issue 15, point 1): the confirmation lists every dependent
row by table with counts; a pipeline or distributor with usage (or a published pipeline) is kept
and offered archiving instead; usage stays listed and billed; every delete ends with a message;
bulk delete follows the same rules. On SQLite and MariaDB."""
from __future__ import annotations

import re

from dist_world import admit, bearer, created, dist_admin_fixture, finish, make_world  # noqa: F401 - fixture
from test_dist_api import API
from conftest import every_database

pytestmark = every_database

TR = re.compile(r"<tr class=\"(cascade|kept)\">\s*<th scope=\"row\">([^<]+)</th>\s*<td class=\"t-int\">(\d+)</td>")


def dependents_on(page: str) -> dict[str, tuple[str, int]]:
    """Table title → (cascade|kept, count), as the confirmation lists them."""
    return {title: (kind, int(n)) for kind, title, n in TR.findall(page)}


async def test_pipeline_with_usage_is_kept_and_archived_instead(dist_admin):
    admin = dist_admin
    w = await make_world(admin)
    call = (await admit(w, "req-keep", units=6)).json()
    assert (await finish(w, call["call_id"], units=6)).status_code == 200
    base = "/pipeline_core/pipelines"

    page = await admin.client.get(f"{base}/{w.pipeline_id}/delete")
    assert page.status_code == 200
    deps = dependents_on(page.text)
    assert deps == {"步骤": ("cascade", 1), "版本": ("cascade", 1), "定价": ("cascade", 1),
                    "分销商产线": ("cascade", 1), "使用记录": ("kept", 1)}, deps
    assert "不能删除" in page.text and "个发布版本" in page.text
    assert 'name="retire"' in page.text and "「归档」" in page.text
    assert 'class="danger">删除' not in page.text  # no delete button while something keeps it

    refused = await admin.form(f"{base}/{w.pipeline_id}/delete", {})
    assert refused.status_code == 409 and "不能删除" in refused.text
    api = await admin.api("DELETE", f"/api/pipeline_core/pipelines/{w.pipeline_id}")
    assert api.status_code == 409, api.text
    reasons = api.json()["error"]["fields"][w.pipeline_id]
    assert "usage log rows refer to it" in reasons and "published versions" in reasons
    bulk = await admin.api("POST", "/api/pipeline_core/pipelines/bulk", json={"ids": [w.pipeline_id],
                                                                             "action": "delete"})
    assert bulk.status_code == 409
    confirm = await admin.form(f"{base}/bulk", {"op": "delete", "ids": [w.pipeline_id]})
    assert confirm.status_code == 200 and dependents_on(confirm.text)["使用记录"] == ("kept", 1)
    again = await admin.form(f"{base}/bulk", {"op": "delete", "confirm": "1", "ids": [w.pipeline_id]})
    assert again.status_code == 409
    assert 'name="op" value="set:status:archived"' in again.text

    # still there, still billed, still named in the usage log
    assert (await admin.api("GET", f"/api/pipeline_core/pipelines/{w.pipeline_id}")).status_code == 200
    usage = (await w.client.get(f"{API}/usage", headers=bearer(w.key))).json()["rows"]
    assert [(r["pipeline"], r["amount"]) for r in usage] == [("ocr", "0.120000")]
    log = await admin.client.get("/pipeline_ops/pipeline_usage_log")
    assert "Pipeline ocr" in log.text and w.pipeline_id not in re.sub(r'href="[^"]*"|value="[^"]*"', "", log.text)

    # archive instead: the status changes through the edit checks, with a message
    r = await admin.form(f"{base}/{w.pipeline_id}/delete", {"retire": "1"})
    assert r.status_code == 303 and r.headers["location"] == f"{base}/{w.pipeline_id}"
    record = await admin.client.get(r.headers["location"])
    assert "未删除：产线「" in record.text and "」已改为「归档」，历史记录保留。" in record.text
    again = await admin.client.get(r.headers["location"])
    assert "未删除" not in again.text  # the message is shown once
    got = (await admin.api("GET", f"/api/pipeline_core/pipelines/{w.pipeline_id}")).json()
    assert got["status"] == "archived"
    archived_page = await admin.client.get(f"{base}/{w.pipeline_id}/delete")
    assert 'name="retire"' not in archived_page.text  # already archived: nothing more to offer

    # the distributor is kept by its usage too, and offered closing
    page = await admin.client.get(f"/pipeline_dist/distributors/{w.distributor_id}/delete")
    assert dependents_on(page.text) == {"分销商产线": ("cascade", 1), "使用记录": ("kept", 1)}
    assert "「关闭」" in page.text
    assert (await admin.api("DELETE", f"/api/pipeline_dist/distributors/{w.distributor_id}")).status_code == 409


async def test_deletes_take_their_parts_and_say_so(admin):
    base = "/pipeline_core/pipelines"
    p = await created(admin, "/api/pipeline_core/pipelines", {"code": "gone", "name": "Gone"})
    steps = [await created(admin, "/api/pipeline_core/pipeline_steps",
                           {"pipeline_id": p["id"], "seq": n, "name": f"s{n}", "step_type": "transform"})
             for n in (1, 2)]
    await created(admin, "/api/pipeline_ops/pipeline_pricing", {
        "pipeline_id": p["id"], "step_id": steps[0]["id"], "billing_unit": "call", "price_mode": "unit",
        "unit_price": "0.1", "currency": "CNY", "effective_from": "2026-01-01 00:00:00"})

    page = await admin.client.get(f"{base}/{p['id']}/delete")
    assert dependents_on(page.text) == {"步骤": ("cascade", 2), "定价": ("cascade", 1)}
    assert ">s1</a>" in page.text and ">s2</a>" in page.text and "删除后无法恢复" in page.text
    r = await admin.form(f"{base}/{p['id']}/delete", {})
    assert r.status_code == 303 and r.headers["location"] == base
    assert "已删除 1 条产线记录。" in (await admin.client.get(r.headers["location"])).text
    for s in steps:
        assert (await admin.api("GET", f"/api/pipeline_core/pipeline_steps/{s['id']}")).status_code == 404
    listed = (await admin.api("GET", "/api/pipeline_ops/pipeline_pricing")).json()
    assert listed["total"] == 0

    # a row nothing refers to says so; bulk delete confirms first, then deletes with a message
    ids = [(await created(admin, "/api/pipeline_core/pipelines", {"code": f"b{n}", "name": f"B{n}"}))["id"]
           for n in range(2)]
    single = await admin.client.get(f"{base}/{ids[0]}/delete")
    assert "没有其他记录引用它" in single.text
    confirm = await admin.form(f"{base}/bulk", {"op": "delete", "ids": ids})
    assert confirm.status_code == 200 and "确认删除" in confirm.text and confirm.text.count('name="ids"') == 2
    done = await admin.form(f"{base}/bulk", {"op": "delete", "confirm": "1", "ids": ids})
    assert done.status_code == 303 and done.headers["location"] == base
    assert "已删除 2 条产线记录。" in (await admin.client.get(done.headers["location"])).text
    assert (await admin.api("GET", "/api/pipeline_core/pipelines")).json()["total"] == 0
