"""Money for people: amounts in the currency's minor units (CNY 2 places), unit prices at their
own scale, report totals the exact sum shown once rounded; stored values stay exact."""
from __future__ import annotations

import re
from decimal import Decimal

from dist_world import (
    admit,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    link,
    make_pipeline,
    make_world,
    usage_rows,
)
from helpers import seed

from app.core.clock import utcnow
from app.core.ids import new_id
from app.web.formatting import money, unit_price

LOG = "/pipeline_ops/pipeline_usage_log"


def test_one_rule_per_kind():
    assert money(Decimal("30.000000"), "CNY") == "30.00"
    assert money(Decimal("0.120000"), "CNY") == "0.12"
    assert money(Decimal("0.125"), "CNY") == "0.13"  # half up, as on an invoice
    assert money(Decimal("1234567.5"), "CNY", "en") == "1,234,567.50"
    assert money(Decimal("1234.5"), "JPY") == "1,235"  # the yen has no minor unit
    assert unit_price(Decimal("0.020000"), "CNY") == "0.02"
    assert unit_price(Decimal("0.016667"), "CNY") == "0.016667"
    assert unit_price(Decimal("5"), "CNY") == "5.00"


async def test_pages_show_minor_units_and_exact_totals(dist_admin, clock):
    clock.at_local(dist_admin.ctx.settings.business_timezone)
    clock.stop()
    w = await make_world(dist_admin, code="money")
    pack = await make_pipeline(dist_admin, "moneypack")
    await link(dist_admin, w.distributor_id, pack, price_mode="package", package_units=1800, package_price="30")
    packed = (await admit(w, "p", code="moneypack", units=1800)).json()
    assert packed["amount"] == "30.000000"  # the API stays exact
    row = next(r for r in await usage_rows(w) if r["request_id"] == "p")
    assert row["unit_price"] == Decimal("0.016667") and row["amount"] == Decimal(30)

    record = await dist_admin.client.get(f"{LOG}/{row['id']}")
    cells = dict(re.findall(r"<dt>([^<]+)</dt><dd class=\"t-decimal\">([^<]*)</dd>", record.text))
    assert cells == {"单价": "0.016667", "金额": "30.00", "套餐价(当时)": "30.00"}
    listed = await dist_admin.client.get(LOG, params={"distributor_id": w.distributor_id})
    assert '<td class="t-decimal">30.00</td>' in listed.text and "30.000000" not in listed.text

    # three calls of 0.333333 (0.33 each in the usage log): the report sums them exactly, 0.999999,
    # and shows that once rounded, 1.00
    await seed(dist_admin.ctx, pipeline_usage_log=[
        {"id": new_id(), "pipeline_id": w.pipeline_id, "distributor_id": w.distributor_id, "request_id": f"s{i}",
         "units": 1, "unit_price": Decimal("0.333333"), "amount": Decimal("0.333333"), "currency": "CNY",
         "status": "succeeded", "started_at": utcnow()} for i in range(3)])
    report = await dist_admin.client.get("/pipeline_ops/usage_daily",
                                         params={"distributor_id": w.distributor_id, "pipeline_id": w.pipeline_id})
    assert '<td class="t-decimal">1.00</td>' in report.text  # the row: 0.999999 exact
    footer = report.text.split("<tfoot>")[1]
    assert re.search(r'<td class="t-decimal">1\.00</td>', footer)
    both = await dist_admin.client.get("/pipeline_ops/usage_daily", params={"distributor_id": w.distributor_id})
    footer = both.text.split("<tfoot>")[1]
    assert '<td class="t-decimal">31.00</td>' in footer  # 30 + 0.999999, rounded once
