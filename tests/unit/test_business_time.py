"""One business time zone for people (Asia/Shanghai: its midnight is 16:00 UTC): calls just
before and after a local midnight land on the same day in the usage log's typed filter, the daily
report, its link, the pipeline's chart and the distributor's daily quota; every time on a page
is shown in that zone, which the page names."""
from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from helpers import saved_id
from dist_world import (
    API,
    admit,
    bearer,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    make_world,
    usage_rows,
)

LOG = "/pipeline_ops/pipeline_usage_log"


def _ids(html: str) -> set[str]:
    return set(re.findall(rf'href="{LOG}/(\w+)"', html))


async def test_a_day_is_the_same_day_everywhere(dist_admin, clock):
    tz_name = dist_admin.ctx.settings.business_timezone
    tz = ZoneInfo(tz_name)
    w = await make_world(dist_admin, code="tzday", dist={"daily_quota": 100})
    today = datetime.now(tz).date()
    midnight = datetime.combine(today, time(), tzinfo=tz)  # the latest local midnight: 16:00 UTC yesterday
    assert midnight.astimezone(UTC).hour == 16
    day, before = today.isoformat(), (today - timedelta(days=1)).isoformat()
    clock.stop()
    for i, offset in enumerate((-30, -1, 0, 1, 60)):  # seconds from the local midnight
        clock.stopped = midnight.astimezone(UTC) + timedelta(seconds=offset)
        assert (await admit(w, f"c{i}")).status_code == 201
    rows = {r["request_id"]: r for r in await usage_rows(w)}
    after_ids = {rows[f"c{i}"]["id"] for i in (2, 3, 4)}

    # the usage log, filtered as a person types it (datetime-local, business zone)
    page = await dist_admin.client.get(LOG, params={"distributor_id": w.distributor_id,
                                                    "started_at__from": f"{day}T00:00"})
    assert page.status_code == 200 and _ids(page.text) == after_ids
    assert f'<small class="tz">({tz_name})</small>' in page.text  # the column says which zone
    assert f">{day} 00:00:00<" in page.text and f">{before} 23:59:59<" not in page.text
    yesterday = await dist_admin.client.get(LOG, params={"distributor_id": w.distributor_id,
                                                         "started_at__from": f"{before}T00:00",
                                                         "started_at__to": f"{before}T23:59"})
    assert _ids(yesterday.text) == {rows["c0"]["id"], rows["c1"]["id"]}  # "to 23:59" takes 23:59:59 in

    # the daily report counts the same calls, and its row opens exactly them
    report = await dist_admin.client.get("/pipeline_ops/usage_daily", params={"distributor_id": w.distributor_id})
    counted = dict(re.findall(r'<tr><td><a href="[^"]+">(\d{4}-\d\d-\d\d)</a></td>.*?<td class="t-int">(\d+)</td>',
                              report.text, re.S))
    assert counted == {day: "3", before: "2"}
    link = re.search(rf'<a href="([^"]+)">{day}</a>', report.text).group(1).replace("&amp;", "&")
    opened = await dist_admin.client.get(link)
    assert opened.status_code == 200 and _ids(opened.text) == after_ids

    # the chart and the quota agree
    chart = await dist_admin.client.get(f"/pipeline_core/pipelines/{w.pipeline_id}")
    bars = dict(re.findall(r"<title>(\d{4}-\d\d-\d\d): (\d+)</title>", chart.text))
    assert bars[day] == "3" and bars[before] == "2"
    quota = (await dist_admin.client.get(f"{API}/quota", headers=bearer(w.key))).json()
    daily = next(q for q in quota["distributor"] if q["limit"] == "distributor.daily")
    assert daily["used"] == 3

    # the record page shows the time in the zone and says so
    record = await dist_admin.client.get(f"{LOG}/{rows['c2']['id']}")
    assert f"{day} 00:00:00" in record.text and f"({tz_name})" in record.text


async def test_filters_at_the_calendar_edge_are_refused_not_failed(dist_admin):
    for value in ("9999-12-31T23:59", "0001-01-01T00:00"):
        r = await dist_admin.client.get(LOG, params={"started_at__to": value})
        assert r.status_code in (200, 400), r.text


async def test_forms_take_and_show_times_in_the_business_zone(admin):
    tz_name = admin.ctx.settings.business_timezone
    p = (await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "tzform", "name": "Tz form"})).json()
    new = await admin.client.get("/pipeline_ops/pipeline_pricing/new")
    assert f'<small class="tz">({tz_name})</small>' in new.text  # the time inputs say which zone
    r = await admin.form("/pipeline_ops/pipeline_pricing/new", {
        "pipeline_id": p["id"], "billing_unit": "call", "price_mode": "unit", "unit_price": "0.5", "currency": "CNY",
        "effective_from": "2026-12-02T08:00", "status": "active"})
    assert r.status_code == 303, r.text
    row_id = saved_id(r.headers["location"])
    stored = (await admin.api("GET", f"/api/pipeline_ops/pipeline_pricing/{row_id}")).json()
    assert stored["effective_from"] == "2026-12-02 00:00:00"  # 08:00 in Shanghai, kept as UTC
    edit = await admin.client.get(f"/pipeline_ops/pipeline_pricing/{row_id}/edit")
    assert 'value="2026-12-02T08:00:00"' in edit.text
    record = await admin.client.get(f"/pipeline_ops/pipeline_pricing/{row_id}")
    assert "2026-12-02 08:00:00" in record.text
