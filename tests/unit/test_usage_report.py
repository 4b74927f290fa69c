"""Operators see daily usage: a chart on the pipeline's and distributor's pages, and the daily report,
with days cut in the business time zone (Asia/Shanghai by default: 16:00 UTC is already tomorrow)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from helpers import seed

from app.core.ids import new_id


async def test_daily_totals_and_chart(admin, clock):
    p = (await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "u1", "name": "Usage One"})).json()
    d = (await admin.api("POST", "/api/pipeline_dist/distributors", json={"name": "Dee"})).json()
    tz = ZoneInfo(admin.ctx.settings.business_timezone)
    today = clock.at_local(tz.key)  # noon: the page and the rows below agree on which day is today
    local_midnight = datetime(today.year, today.month, today.day, tzinfo=tz)
    at_today = (local_midnight + timedelta(hours=1)).astimezone(UTC).replace(tzinfo=None)
    at_yesterday = (local_midnight - timedelta(minutes=1)).astimezone(UTC).replace(tzinfo=None)
    calls = [(at_today, "succeeded")] * 3 + [(at_yesterday, "failed")] * 2 + [(at_today, "rejected")]
    await seed(admin.ctx, pipeline_usage_log=[
        {"id": new_id(), "pipeline_id": p["id"], "distributor_id": d["id"], "request_id": f"r{i}", "units": 2,
         "unit_price": "0.500000", "amount": "1.000000", "currency": "CNY", "status": status, "started_at": at}
        for i, (at, status) in enumerate(calls)])

    page = await admin.client.get(f"/pipeline_core/pipelines/{p['id']}")
    assert page.status_code == 200
    bars = dict(re.findall(r"<title>(\d{4}-\d\d-\d\d): (\d+)</title>", page.text))
    assert len(bars) == 30
    assert bars[today.isoformat()] == "3" and bars[(today - timedelta(days=1)).isoformat()] == "2"
    dist_page = await admin.client.get(f"/pipeline_dist/distributors/{d['id']}")
    assert '<svg class="chart"' in dist_page.text and f"{today.isoformat()}: 3<" in dist_page.text

    report = await admin.client.get("/pipeline_ops/usage_daily", params={"distributor_id": d["id"]})
    assert report.status_code == 200
    cells = re.findall(r"<tr><td><a href=\"[^\"]+\">(\d{4}-\d\d-\d\d)</a></td><td>Dee</td>\s*<td>Usage One</td>"
                       r"<td>CNY</td><td class=\"t-int\">(\d+)</td>\s*<td class=\"t-int\">(\d+)</td>"
                       r"<td class=\"t-decimal\">([\d.]+)</td><td class=\"t-int\">0</td></tr>", report.text)
    got = {day: (int(n), int(u), float(a)) for day, n, u, a in cells}
    assert got == {today.isoformat(): (3, 6, 3.0), (today - timedelta(days=1)).isoformat(): (2, 4, 2.0)}
