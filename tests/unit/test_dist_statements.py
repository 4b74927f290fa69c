"""Monthly statements, in-process on SQLite and MariaDB, on an injected clock: a month with unit
and package prices adds up exactly to a recount of its usage rows; closing it freezes it (later
finishes, price and row changes leave it alone) and the calls that finish after the close are
adjustments on the next month, which again add up exactly (the world: `dist_world`)."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import openpyxl
import pytest
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

from app.core import clock
from app.web.formatting import money
from conftest import every_database

pytestmark = every_database

TZ = "Asia/Shanghai"


@pytest.fixture
def at():
    """`at(utc)` moves the app's clock there (a naive UTC datetime); the real clock comes back after."""
    def move(when: datetime) -> None:
        clock.set_source(lambda: when.replace(tzinfo=UTC))

    yield move
    clock.set_source(None)


def recount(rows: list[dict], month: str) -> dict[str, tuple[int, int, Decimal]]:
    """Per currency: calls, units and amount of the rows that started in `month` (business time)."""
    first = datetime.strptime(month, "%Y-%m").date()
    start, end = clock.month_bounds(TZ, first)
    out: dict[str, tuple[int, int, Decimal]] = {}
    for r in rows:
        if start <= r["started_at"] < end and r["status"] != "rejected":
            n, u, a = out.get(r["currency"], (0, 0, Decimal(0)))
            out[r["currency"]] = (n + 1, u + int(r["units"]), a + Decimal(str(r["amount"] or 0)))
    return out


def totals_of(doc: dict) -> dict[str, tuple[int, int, Decimal]]:
    return {t["currency"]: (t["calls"], t["units"], Decimal(t["amount"])) for t in doc["totals"]}


def minus(a: dict, b: dict) -> dict:
    keys = set(a) | set(b)
    zero = (0, 0, Decimal(0))
    return {k: tuple(x - y for x, y in zip(a.get(k, zero), b.get(k, zero), strict=True)) for k in keys}


def plus(a: dict, b: dict) -> dict:
    return minus(a, {k: tuple(-x for x in v) for k, v in b.items()})


async def test_statement_adds_up_freezes_and_carries_late_finishes(dist_admin, at):
    assert dist_admin.ctx.settings.business_timezone == TZ
    at(datetime(2026, 10, 31, 15, 56))  # 23:56 on 31 October in Shanghai: the month's last minutes
    w = await make_world(dist_admin, code="sunit")
    pack = await make_pipeline(dist_admin, "spack", price="0.3")
    await link(dist_admin, w.distributor_id, pack, price_mode="package", package_units=10, package_price="1.5")

    calls = {}
    for name, code, units in (("u1", "sunit", 1), ("u2", "sunit", 2), ("u3", "sunit", 5), ("p1", "spack", 25),
                              ("p2", "spack", 3)):
        r = await admit(w, f"oct-{name}", code=code, units=units)
        assert r.status_code == 201, r.text
        calls[name] = r.json()
    assert calls["p1"]["amount"] == "4.500000" and calls["p2"]["amount"] == "1.500000"  # whole packages
    assert (await finish(w, calls["u1"]["call_id"])).status_code == 200
    assert (await finish(w, calls["u2"]["call_id"], units=7)).status_code == 200
    assert (await finish(w, calls["p1"]["call_id"])).status_code == 200

    at(datetime(2026, 10, 31, 16, 1))  # 00:01 on 1 November: October has ended, u3 and p2 still run
    open_oct = (await w.client.get(f"{API}/statements/2026-10", headers=bearer(w.key))).json()
    assert open_oct["status"] == "open"
    at_close = recount(await usage_rows(w), "2026-10")
    assert totals_of(open_oct) == at_close
    modes = {(x["pipeline"], x["price_mode"]) for x in open_oct["lines"]}
    assert modes == {("sunit", "unit"), ("spack", "package")}

    r = await dist_admin.form("/pipeline_dist/statements/close", {"distributor_id": w.distributor_id,
                                                                  "month": "2026-10"})
    assert r.status_code == 303, r.text
    again = await dist_admin.form("/pipeline_dist/statements/close", {"distributor_id": w.distributor_id,
                                                                      "month": "2026-10"})
    assert again.status_code == 409
    closed = (await w.client.get(f"{API}/statements/2026-10", headers=bearer(w.key))).json()
    assert closed["status"] == "closed" and closed["closed_at"]
    assert totals_of(closed) == at_close

    # after the close: two late finishes that change the amounts, a new price, a November call
    assert (await finish(w, calls["u3"]["call_id"], units=9)).json()["amount"] == "0.180000"
    assert (await finish(w, calls["p2"]["call_id"], units=30)).json()["amount"] == "4.500000"
    prices = (await dist_admin.api("GET", "/api/pipeline_ops/pipeline_pricing",
                                   params={"pipeline_id": w.pipeline_id})).json()
    price_id = (prices["rows"] if isinstance(prices, dict) else prices)[0]["id"]
    r = await dist_admin.api("PATCH", f"/api/pipeline_ops/pipeline_pricing/{price_id}", json={"unit_price": "0.05"})
    assert r.status_code == 200, r.text
    at(datetime(2026, 11, 3, 2, 0))
    assert (await admit(w, "nov-1", code="sunit", units=4)).status_code == 201

    frozen = (await w.client.get(f"{API}/statements/2026-10", headers=bearer(w.key))).json()
    assert frozen == closed  # frozen: neither the late finishes nor the new price changed it
    rows = await usage_rows(w)
    nov = (await w.client.get(f"{API}/statements/2026-11", headers=bearer(w.key))).json()
    assert nov["status"] == "open"
    late = minus(recount(rows, "2026-10"), at_close)
    assert late == {"CNY": (0, 4 + 27, Decimal("0.08") + Decimal("3.0"))}
    adjusted = {(a["month"], a["pipeline"], a["price_mode"]): (a["units"], Decimal(a["amount"]))
                for a in nov["adjustments"]}
    assert adjusted == {("2026-10", "sunit", "unit"): (4, Decimal("0.08")),
                        ("2026-10", "spack", "package"): (27, Decimal("3.0"))}
    assert totals_of(nov) == plus(recount(rows, "2026-11"), late)
    assert [x["amount"] for x in nov["lines"]] == ["0.200000"]  # the new price, for November's call

    # the operators' page and its exports say the same
    page = await dist_admin.client.get("/pipeline_dist/statements",
                                       params={"distributor_id": w.distributor_id, "month": "2026-10"})
    assert page.status_code == 200 and 'class="badge closed"' in page.text
    total = next(t for t in closed["totals"] if t["currency"] == "CNY")
    assert f'<td class="t-decimal">{money(total["amount"], "CNY")}</td>' in page.text  # the currency's 2 places
    sheet = await dist_admin.client.get("/pipeline_dist/statements", params={
        "distributor_id": w.distributor_id, "month": "2026-11", "format": "csv"})
    lines = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert lines[0][:3] == ["month", "pipeline", "name"]
    assert [x for x in lines if x[0] == "total"][0][-1] == next(t["amount"] for t in nov["totals"])
    book = await dist_admin.client.get("/pipeline_dist/statements", params={
        "distributor_id": w.distributor_id, "month": "2026-10", "format": "xlsx"})
    ws = openpyxl.load_workbook(io.BytesIO(book.content)).active
    cells = [[c.value for c in row] for row in ws.iter_rows()]
    assert Decimal(str([x for x in cells if x[0] == "total"][0][-1])) == Decimal(total["amount"])
    overview = await dist_admin.client.get("/pipeline_dist/statements", params={"month": "2026-10"})
    assert overview.status_code == 200 and w.distributor_id in overview.text
    assert f"{money(total['amount'], 'CNY')} CNY" in overview.text  # the frozen totals, in 2 places


async def test_statement_month_is_checked(dist_admin):
    w = await make_world(dist_admin)
    for bad in ("2026-13", "26-01", "2026-1", "0001-01"):
        r = await w.client.get(f"{API}/statements/{bad}", headers=bearer(w.key))
        assert r.status_code == 400, (bad, r.text)
    assert (await w.client.get(f"{API}/statements/2026-01")).status_code == 401
    r = await dist_admin.form("/pipeline_dist/statements/close", {"distributor_id": w.distributor_id,
                                                                  "month": "9000-12"})
    assert r.status_code == 409  # a month that has not ended cannot close
