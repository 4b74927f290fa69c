"""A usage row keeps what billing needs as it was at the call (pipeline code and name, distributor
name, price mode and package terms): renaming the pipeline and changing its price afterwards
rewrites none of the usage log, the daily report or the distributor's own usage and statement."""
from __future__ import annotations

import re
from decimal import Decimal

from dist_world import (
    API,
    admit,
    bearer,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    finish,
    link,
    make_pipeline,
    make_world,
    usage_rows,
)

from app.core.clock import business_day, utcnow


async def test_usage_rows_keep_their_names_and_terms(dist_admin, clock):
    day = clock.at_local(dist_admin.ctx.settings.business_timezone)  # noon: every call on one day
    clock.stop()
    w = await make_world(dist_admin, code="snap")
    pack_id = await make_pipeline(dist_admin, "snappack")
    await link(dist_admin, w.distributor_id, pack_id, price_mode="package", package_units=1800, package_price="30")
    dist_name = (await dist_admin.api("GET", f"/api/pipeline_dist/distributors/{w.distributor_id}")).json()["name"]

    calls = [(await admit(w, f"u{i}", units=3)).json() for i in range(2)]
    packed = (await admit(w, "p1", code="snappack", units=2000)).json()
    assert [c["amount"] for c in calls] == ["0.060000", "0.060000"] and packed["amount"] == "60.000000"

    rows = {r["request_id"]: r for r in await usage_rows(w)}
    assert {(r["pipeline_code"], r["pipeline_name"], r["distributor_name"], r["price_mode"])
            for k, r in rows.items() if k.startswith("u")} == {("snap", "Pipeline snap", dist_name, "unit")}
    p = rows["p1"]
    assert (p["pipeline_code"], p["pipeline_name"], p["price_mode"], p["package_units"],
            Decimal(p["package_price"])) == ("snappack", "Pipeline snappack", "package", 1800, Decimal(30))

    # the operator renames both pipelines and the distributor, and changes every price
    for pid, code in ((w.pipeline_id, "snap"), (pack_id, "snappack")):
        r = await dist_admin.api("PATCH", f"/api/pipeline_core/pipelines/{pid}", json={"name": f"Renamed {code}"})
        assert r.status_code == 200, r.text
    r = await dist_admin.api("PATCH", f"/api/pipeline_dist/distributors/{w.distributor_id}", json={"name": "Later"})
    assert r.status_code == 200, r.text
    price = (await dist_admin.api("GET", "/api/pipeline_ops/pipeline_pricing",
                                  params={"pipeline_id": w.pipeline_id})).json()["rows"][0]
    r = await dist_admin.api("PATCH", f"/api/pipeline_ops/pipeline_pricing/{price['id']}", json={"unit_price": "5"})
    assert r.status_code == 200, r.text
    r = await dist_admin.api("PATCH", f"/api/pipeline_dist/distributor_pipeline/{(await _link_id(w, pack_id))}",
                             json={"package_units": 10, "package_price": "999"})
    assert r.status_code == 200, r.text

    # a late finish with other units reprices on the terms the call was admitted with
    done = (await finish(w, packed["call_id"], units=3700)).json()
    assert done["amount"] == "90.000000"  # 3 packages of 1,800 at 30, not the new 10-unit packages at 999
    assert (await finish(w, calls[0]["call_id"], units=4)).json()["amount"] == "0.080000"

    # the usage log shows the names of the time
    page = await dist_admin.client.get("/pipeline_ops/pipeline_usage_log", params={"distributor_id": w.distributor_id})
    assert page.status_code == 200
    body = page.text.split("<tbody>")[1].split("</tbody>")[0]  # the filters' dropdowns name them as today
    assert body.count(">Pipeline snap<") == 2 and body.count(">Pipeline snappack<") == 1
    assert "Renamed" not in body and "Later" not in body and f">{dist_name}<" in body
    # the daily report: the old names and the billed amounts
    report = await dist_admin.client.get("/pipeline_ops/usage_daily", params={"distributor_id": w.distributor_id})
    lines = re.findall(r"<td>([^<]*)</td>\s*<td>([^<]*)</td><td>CNY</td><td class=\"t-int\">(\d+)</td>\s*"
                       r"<td class=\"t-int\">(\d+)</td><td class=\"t-decimal\">([\d.,]+)</td>", report.text)
    assert sorted(lines) == [(dist_name, "Pipeline snap", "2", "7", "0.14"),
                             (dist_name, "Pipeline snappack", "1", "3700", "90.00")]
    # the distributor's own usage: the codes and amounts it was billed
    usage = (await dist_admin.client.get(f"{API}/usage", headers=bearer(w.key))).json()
    assert {(u["pipeline"], u["amount"]) for u in usage["rows"]} == {("snap", "0.140000"),
                                                                      ("snappack", "90.000000")}
    month = business_day(dist_admin.ctx.settings.business_timezone, utcnow()).strftime("%Y-%m")
    statement = (await dist_admin.client.get(f"{API}/statements/{month}", headers=bearer(w.key))).json()
    assert {(x["pipeline"], x["name"], x["amount"]) for x in statement["lines"]} == {
        ("snap", "Pipeline snap", "0.140000"), ("snappack", "Pipeline snappack", "90.000000")}
    assert day == business_day(dist_admin.ctx.settings.business_timezone, utcnow())


async def _link_id(w, pipeline_id: str) -> str:
    r = await w.admin.api("GET", "/api/pipeline_dist/distributor_pipeline",
                          params={"distributor_id": w.distributor_id, "pipeline_id": pipeline_id})
    return r.json()["rows"][0]["id"]


async def test_the_usage_log_export_keeps_the_names_of_the_time(dist_admin):
    import csv
    import io

    w = await make_world(dist_admin, code="snapx")
    assert (await admit(w, "x1")).status_code == 201
    r = await dist_admin.api("PATCH", f"/api/pipeline_core/pipelines/{w.pipeline_id}", json={"name": "Renamed"})
    assert r.status_code == 200, r.text
    sheet = await dist_admin.client.get("/pipeline_ops/pipeline_usage_log/export.csv",
                                        params={"distributor_id": w.distributor_id})
    rows = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert rows[1][rows[0].index("产线")] == "Pipeline snapx"
