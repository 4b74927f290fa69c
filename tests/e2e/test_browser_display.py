"""Times and money as people read them, in a real browser against the real server: the usage log
names its zone in the column headings and shows amounts in the currency's minor units; the daily
report's row opens exactly its usage rows. Screenshots at 1366x900 and 390x844 go to screenshots/."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from live_server import Browserless, create_offer
from test_browser import PASSWORD, page, server, shot  # noqa: F401 - the live server and browser fixtures
from test_browser_dist import login

pytestmark = pytest.mark.browser
TZ = "Asia/Shanghai"


def test_usage_log_and_daily_report_read_for_people(page, server):  # noqa: F811
    op = Browserless(server.url)
    assert op.login("olga", PASSWORD).status_code == 303
    key, _, did = create_offer(op, "shown", unit_price="0.04")
    for i, units in enumerate((3, 30)):
        r = op.http.post("/api/dist/v1/pipelines/shown/calls", json={"request_id": f"r{i}", "units": units},
                         headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201, r.text
    today = datetime.now(UTC).astimezone(ZoneInfo(TZ)).date().isoformat()

    login(page)
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"/pipeline_ops/usage_daily?distributor_id={did}")
        row = page.locator("table.report tbody tr").first
        assert row.locator("td").nth(2).inner_text() == "Shown" and row.locator("td").nth(6).inner_text() == "1.32"
        assert page.locator("table.report tfoot td.t-decimal").inner_text() == "1.32"  # 0.12 + 1.20
        shot(page, server, f"usage-daily-{width}")
        with page.expect_navigation():
            page.click(f"table.report tbody a:text('{today}')")
        headings = page.locator("table.list thead th").all_inner_texts()
        assert f"开始时间 ({TZ})" in [" ".join(h.split()).replace(" ▼", "") for h in headings], headings
        amounts = sorted(page.locator("table.list tbody td.t-decimal").all_inner_texts())
        assert "0.12" in amounts and "1.20" in amounts and not any(a.endswith("0000") for a in amounts)
        assert page.locator("table.list tbody tr").count() == 2
        started = page.locator("table.list tbody td.t-datetime").first.inner_text()
        assert started.startswith(today)
        shot(page, server, f"usage-log-{width}")
