"""Price resolution: the precedence ladder, unit and package amounts, periods and rounding.

`pick_price` (pure) carries the table of cases; `resolve_price` and the save rules run against
real databases (SQLite and MariaDB), the overlap refusal also through the JSON API and the form.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from helpers import seed

from app.core.ids import new_id
from app.crud.rows import Actor, CrudError
from app.crud.store import create_row, update_row
from modules.pipeline_ops.pricing import Price, period_bounds, pick_price, resolve_price, resolve_prices

T0 = datetime(2025, 1, 1)
T1 = datetime(2025, 6, 1)
AT = datetime(2025, 3, 1, 12, 0)
D = Decimal


def row(price="0.02", *, step=None, model=None, mode="unit", units=None, pkg=None, frm=T0, to=None,
        status="active", currency="CNY", unit="call", id_="r"):
    return {"id": id_, "step_id": step, "model": model, "price_mode": mode, "billing_unit": unit,
            "unit_price": None if price is None else D(price), "package_units": units,
            "package_price": None if pkg is None else D(pkg), "currency": currency,
            "effective_from": frm, "effective_to": to, "status": status}


def link(price="0.001", *, enabled="1", mode="unit", units=None, pkg=None, frm=None, to=None):
    return {"enabled": enabled, "price_mode": mode, "unit_price": None if price is None else D(price),
            "package_units": units, "package_price": None if pkg is None else D(pkg),
            "effective_from": frm, "effective_to": to}


LADDER = [row("0.02", id_="p"), row("0.01", step="S1", id_="s"), row("0.005", step="S1", model="m1", id_="sm")]

# id, rows, link, (step, model), at, units, expected (source, mode, amount, currency) or None
CASES = [
    ("pipeline-only", [row("0.02")], None, (None, None), AT, 10, ("pipeline", "unit", "0.200000", "CNY")),
    ("step-beats-pipeline", LADDER, None, ("S1", None), AT, 10, ("step", "unit", "0.100000", "CNY")),
    ("step-model-beats-step", LADDER, None, ("S1", "m1"), AT, 10, ("step_model", "unit", "0.050000", "CNY")),
    ("other-model-falls-to-step", LADDER, None, ("S1", "m2"), AT, 10, ("step", "unit", "0.100000", "CNY")),
    ("other-step-falls-to-pipeline", LADDER, None, ("S2", "m1"), AT, 10, ("pipeline", "unit", "0.200000", "CNY")),
    ("model-without-step-is-pipeline", LADDER, None, (None, "m1"), AT, 10, ("pipeline", "unit", "0.200000", "CNY")),
    ("distributor-beats-step-model", LADDER, link("0.001"), ("S1", "m1"), AT, 10,
     ("distributor", "unit", "0.010000", "CNY")),
    ("disabled-link-ignored", LADDER, link("0.001", enabled="0"), ("S1", None), AT, 10,
     ("step", "unit", "0.100000", "CNY")),
    ("link-without-mode-is-list-price", LADDER, link(None, mode=None), (None, None), AT, 10,
     ("pipeline", "unit", "0.200000", "CNY")),
    ("link-after-its-period-ignored", LADDER, link("0.001", frm=T0, to=AT), (None, None), AT, 10,
     ("pipeline", "unit", "0.200000", "CNY")),
    ("link-before-its-period-ignored", LADDER, link("0.001", frm=T1), (None, None), AT, 10,
     ("pipeline", "unit", "0.200000", "CNY")),
    ("link-open-period", [], link("0.001"), (None, None), AT, 3, ("distributor", "unit", "0.003000", "CNY")),
    ("package-exact-multiple", [row(None, mode="package", units=100, pkg="5")], None, (None, None), AT, 200,
     ("pipeline", "package", "10.000000", "CNY")),
    ("package-remainder-charges-whole-package", [row(None, mode="package", units=100, pkg="5")], None,
     (None, None), AT, 201, ("pipeline", "package", "15.000000", "CNY")),
    ("package-one-unit", [row(None, mode="package", units=100, pkg="5")], None, (None, None), AT, 1,
     ("pipeline", "package", "5.000000", "CNY")),
    ("package-zero-units", [row(None, mode="package", units=100, pkg="5")], None, (None, None), AT, 0,
     ("pipeline", "package", "0.000000", "CNY")),
    ("unit-zero-units", [row("0.02")], None, (None, None), AT, 0, ("pipeline", "unit", "0.000000", "CNY")),
    ("distributor-package", [row("0.02")], link(None, mode="package", units=1000, pkg="8.5"), (None, None), AT,
     1001, ("distributor", "package", "17.000000", "CNY")),
    ("at-effective-from-included", [row("0.02", frm=AT)], None, (None, None), AT, 1,
     ("pipeline", "unit", "0.020000", "CNY")),
    ("at-effective-to-excluded", [row("0.02", to=AT), row("0.03", frm=AT, id_="b")], None, (None, None), AT, 1,
     ("pipeline", "unit", "0.030000", "CNY")),
    ("at-effective-to-excluded-nothing-left", [row("0.02", to=AT)], None, (None, None), AT, 1, None),
    ("before-effective-from", [row("0.02", frm=T1)], None, (None, None), AT, 1, None),
    ("open-ended-far-future", [row("0.02")], None, (None, None), datetime(2999, 12, 31), 1,
     ("pipeline", "unit", "0.020000", "CNY")),
    ("inactive-row-ignored", [row("0.02"), row("0.01", step="S1", status="inactive")], None, ("S1", None), AT, 1,
     ("pipeline", "unit", "0.020000", "CNY")),
    ("no-rows", [], None, (None, None), AT, 1, None),
    ("currency-carried", [row("1.5", currency="USD")], None, (None, None), AT, 2,
     ("pipeline", "unit", "3.000000", "USD")),
    ("currency-carried-to-distributor-price", [row("1.5", currency="USD")], link("1"), (None, None), AT, 2,
     ("distributor", "unit", "2.000000", "USD")),
    ("half-up-at-7th-decimal", [row("0.1234565")], None, (None, None), AT, 1, ("pipeline", "unit", "0.123457", "CNY")),
    ("half-up-tiny", [row("0.0000005")], None, (None, None), AT, 1, ("pipeline", "unit", "0.000001", "CNY")),
    ("below-half-rounds-down", [row("0.0000004999")], None, (None, None), AT, 1,
     ("pipeline", "unit", "0.000000", "CNY")),
    ("large-exact", [row("999999999999.999999")], None, (None, None), AT, 10**15,
     ("pipeline", "unit", "999999999999999999000000000.000000", "CNY")),
]


@pytest.mark.parametrize("rows,lnk,call,at,units,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pick_price(rows, lnk, call, at, units, expected):
    price = pick_price(rows, lnk, step_id=call[0], model=call[1], at=at)
    if expected is None:
        assert price is None
        return
    source, mode, amount, currency = expected
    assert (price.source, price.mode, price.currency) == (source, mode, currency)
    result = price.amount(units)
    assert isinstance(result, Decimal) and str(result) == amount


def test_row_order_does_not_matter_and_later_start_wins_a_tie():
    a, b = row("0.02", frm=T0, id_="a"), row("0.03", frm=T0 + timedelta(days=1), id_="b")
    assert pick_price([a, b], at=AT).unit_price == pick_price([b, a], at=AT).unit_price == D("0.03")


def test_package_unit_price_and_billing_unit_carried():
    price = pick_price([row(None, mode="package", units=3, pkg="5", unit="image")], at=AT)
    assert price.unit_price == D("1.666667") and price.billing_unit == "image"
    own = pick_price([row("1", unit="token")], link("0.5"), at=AT)
    assert own.billing_unit == "token" and own.as_json()["unit_price"] == "0.5"


def test_incomplete_rows_never_guess_a_price():
    assert pick_price([row(None, mode="unit")], at=AT) is None
    assert pick_price([row("0.02")], link(None, mode="unit"), at=AT).source == "pipeline"


def test_amount_refuses_negative_and_non_integer_units():
    price = Price("unit", D("1"), None, None, "CNY", "pipeline", "call")
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            price.amount(bad)


def test_period_bounds_business_day_and_month_in_utc():
    # 2025-03-31 17:00 UTC is already April 1st in Shanghai (UTC+8).
    b = period_bounds("Asia/Shanghai", datetime(2025, 3, 31, 17, 0))
    assert b["day"] == (datetime(2025, 3, 31, 16), datetime(2025, 4, 1, 16))
    assert b["month"] == (datetime(2025, 3, 31, 16), datetime(2025, 4, 30, 16))
    # A DST day in Berlin is 23 hours long.
    b = period_bounds("Europe/Berlin", datetime(2025, 3, 30, 12))
    assert b["day"][1] - b["day"][0] == timedelta(hours=23)


# ---- against a real database (the `ctx` fixture) ----------------------------------------------

def pipeline(pid: str, code: str) -> dict:
    return {"id": pid, "code": code, "name": code.upper(), "status": "active"}


def price_row(pipeline_id: str, price: str, *, step=None, model=None, frm=T0, to=None, status="active",
              currency="CNY") -> dict:
    return {"id": new_id(), "pipeline_id": pipeline_id, "step_id": step, "model": model, "billing_unit": "call",
            "price_mode": "unit", "unit_price": D(price), "currency": currency, "effective_from": frm,
            "effective_to": to, "status": status}


async def test_resolve_price_against_db(ctx):
    await seed(ctx, pipelines=[pipeline("P1", "p1"), pipeline("P2", "p2")],
               pipeline_steps=[{"id": "S1", "pipeline_id": "P1", "seq": 1, "name": "s1", "step_type": "model",
                                "model": "m1", "timeout_s": 60, "retries": 0}],
               distributors=[{"id": "D1", "name": "d1", "status": "active"}],
               pipeline_pricing=[price_row("P1", "0.020000"), price_row("P1", "0.010000", step="S1"),
                                 price_row("P1", "0.005000", step="S1", model="m1"),
                                 price_row("P1", "9", frm=T0, to=AT, status="active"),  # ended exactly at AT
                                 price_row("P1", "0.500000", step="S1", model="m9", status="inactive"),
                                 price_row("P2", "1.250000", currency="USD")],
               distributor_pipeline=[{"id": "L1", "distributor_id": "D1", "pipeline_id": "P2", "enabled": "1",
                                      "price_mode": "package", "package_units": 10, "package_price": D("3.5")}])
    async with ctx.db.connect() as conn:
        async def price(**kw):
            return await resolve_price(conn, ctx.catalog, at=AT, **kw)

        p = await price(distributor_id=None, pipeline_id="P1")
        assert (p.source, p.unit_price) == ("pipeline", D("0.02"))
        p = await price(distributor_id="D1", pipeline_id="P1", step_id="S1", model="m1")
        assert (p.source, p.amount(3)) == ("step_model", D("0.015000"))
        p = await price(distributor_id="D1", pipeline_id="P1", step_id="S1", model="m9")
        assert p.source == "step"
        p = await price(distributor_id="D1", pipeline_id="P2")
        assert (p.source, p.currency, p.amount(11)) == ("distributor", "USD", D("7.000000"))
        assert (await price(distributor_id=None, pipeline_id="P2")).amount(11) == D("13.750000")
        assert await price(distributor_id=None, pipeline_id="nope") is None
        many = await resolve_prices(conn, ctx.catalog, distributor_id="D1", pipeline_ids=["P1", "P2"], at=AT)
        assert many["P1"].unit_price == D("0.02") and many["P2"].source == "distributor"


# ---- save rules (service level, both databases) --------------------------------------------

ACTOR = Actor("u1", "tester")


def form_price(pipeline_id: str, frm: str, to: str | None = None, **extra) -> dict:
    return {"pipeline_id": pipeline_id, "price_mode": "unit", "unit_price": "0.01", "effective_from": frm,
            "effective_to": to, **extra}


async def test_overlapping_active_prices_are_refused(ctx):
    await seed(ctx, pipelines=[pipeline("P1", "p1")],
               pipeline_steps=[{"id": "S1", "pipeline_id": "P1", "seq": 1, "name": "s1", "step_type": "model",
                                "timeout_s": 60, "retries": 0}])
    tv = ctx.catalog.tables["pipeline_pricing"]
    first = await create_row(ctx, tv, form_price("P1", "2025-01-01 00:00", "2025-02-01 00:00"), ACTOR, strict=True)
    with pytest.raises(CrudError) as err:
        await create_row(ctx, tv, form_price("P1", "2025-01-31 00:00"), ACTOR, strict=True)
    assert err.value.status == 422 and "overlaps" in err.value.errors["effective_from"]
    with pytest.raises(CrudError) as err:  # open-ended one swallowing the first
        await create_row(ctx, tv, form_price("P1", "2024-01-01 00:00"), ACTOR, strict=True)
    assert "effective_from" in err.value.errors
    # Touching periods do not overlap ([from, to) is half-open); other keys and inactive rows are free.
    second = await create_row(ctx, tv, form_price("P1", "2025-02-01 00:00"), ACTOR, strict=True)
    await create_row(ctx, tv, form_price("P1", "2025-01-15 00:00", step_id="S1"), ACTOR, strict=True)
    await create_row(ctx, tv, form_price("P1", "2025-01-15 00:00", step_id="S1", model="m1"), ACTOR, strict=True)
    await create_row(ctx, tv, form_price("P1", "2025-01-15 00:00", status="inactive"), ACTOR, strict=True)
    # Saving a row never clashes with itself; moving it into its neighbour does.
    await update_row(ctx, tv, first["id"], {"unit_price": "0.02"}, ACTOR, strict=True)
    with pytest.raises(CrudError) as err:
        await update_row(ctx, tv, first["id"], {"effective_to": "2025-03-01 00:00"}, ACTOR, strict=True)
    assert "effective_from" in err.value.errors
    with pytest.raises(CrudError):  # re-activating an overlapping inactive row is refused too
        inactive = await create_row(ctx, tv, form_price("P1", "2025-05-01 00:00", status="inactive"), ACTOR,
                                    strict=True)
        await update_row(ctx, tv, inactive["id"], {"status": "active"}, ACTOR, strict=True)
    assert second["effective_to"] is None


async def test_pricing_shape_rules(ctx):
    await seed(ctx, pipelines=[pipeline("P1", "p1"), pipeline("P2", "p2")],
               pipeline_steps=[{"id": "S2", "pipeline_id": "P2", "seq": 1, "name": "s", "step_type": "model",
                                "timeout_s": 60, "retries": 0}])
    tv = ctx.catalog.tables["pipeline_pricing"]

    async def errors(data: dict) -> dict:
        with pytest.raises(CrudError) as err:
            await create_row(ctx, tv, data, ACTOR, strict=True)
        assert err.value.status == 422
        return err.value.errors

    assert "unit_price" in await errors(form_price("P1", "2025-01-01", unit_price=None))
    assert {"package_units", "package_price"} <= set(await errors(form_price("P1", "2025-01-01",
                                                                             price_mode="package")))
    assert "effective_to" in await errors(form_price("P1", "2025-01-02", "2025-01-01"))
    assert "effective_to" in await errors(form_price("P1", "2025-01-01", "2025-01-01"))
    assert "model" in await errors(form_price("P1", "2025-01-01", model="m1"))
    assert "step_id" in await errors(form_price("P1", "2025-01-01", step_id="S2"))
    ok = await create_row(ctx, tv, form_price("P1", "2025-01-01", price_mode="package", unit_price=None,
                                              package_units=100, package_price="5"), ACTOR, strict=True)
    assert ok["package_price"] == D("5")


async def test_distributor_link_rules(ctx):
    await seed(ctx, pipelines=[pipeline("P1", "p1")], distributors=[{"id": "D1", "name": "d1", "status": "active"}])
    tv = ctx.catalog.tables["distributor_pipeline"]
    base = {"distributor_id": "D1", "pipeline_id": "P1"}
    for data, field in [({"price_mode": "unit"}, "unit_price"), ({"price_mode": "package", "package_price": "1"},
                                                                  "package_units"),
                        ({"effective_from": "2025-02-01", "effective_to": "2025-01-01"}, "effective_to"),
                        ({"daily_quota": 10, "monthly_quota": 9}, "monthly_quota")]:
        with pytest.raises(CrudError) as err:
            await create_row(ctx, tv, {**base, **data}, ACTOR, strict=True)
        assert err.value.status == 422 and field in err.value.errors, (data, err.value.errors)
    row = await create_row(ctx, tv, base, ACTOR, strict=True)  # no own price: the list price applies
    assert row["price_mode"] is None


# ---- through the app (JSON API and form) ---------------------------------------------------

async def test_overlap_refused_through_api_and_form(admin):
    await seed(admin.ctx, pipelines=[pipeline("P1", "p1")])
    api = "/api/pipeline_ops/pipeline_pricing"
    r = await admin.api("POST", api, json=form_price("P1", "2025-01-01 00:00"))
    assert r.status_code == 201, r.text
    r = await admin.api("POST", api, json=form_price("P1", "2025-06-01 00:00", "2025-07-01 00:00"))
    assert r.status_code == 422, r.text
    assert "effective_from" in r.json()["error"]["fields"]
    form = {k: v or "" for k, v in form_price("P1", "2025-06-01T00:00").items()}
    r = await admin.form("/pipeline_ops/pipeline_pricing/new", {**form, "billing_unit": "call", "currency": "CNY",
                                                               "status": "active"})
    assert r.status_code == 422 and "价格重叠" in r.text
    r = await admin.api("GET", api)
    assert r.json()["total"] == 1


async def test_price_and_usage_blocks(ctx, clock):
    from app.core.clock import utcnow
    from modules.pipeline_ops.pricing import prices_block, usage_block

    clock.at_local(ctx.settings.business_timezone)  # "today" is one business day throughout
    now = utcnow()
    await seed(ctx, pipelines=[pipeline("P1", "p1")],
               pipeline_pricing=[price_row("P1", "0.020000", frm=now - timedelta(days=1)),
                                 price_row("P1", "0.030000", frm=now + timedelta(days=30))],
               pipeline_capacity=[{"id": "C1", "pipeline_id": "P1", "daily_quota": 5, "monthly_quota": 100,
                                   "status": "active"}],
               pipeline_usage_log=[{"id": new_id(), "pipeline_id": "P1", "units": 1, "currency": "CNY",
                                    "status": s, "started_at": now} for s in ("succeeded", "running", "rejected")])
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(ctx=ctx)), cookies={"lang": "en"})
    tv = ctx.catalog.tables["pipelines"]
    html = await prices_block(request, tv, {"id": "P1"})
    assert "0.02 CNY / Call" in html and "0.03 CNY" in html and "scheduled" in html
    html = await usage_block(request, tv, {"id": "P1"})
    assert "<td>Today</td><td>2</td><td>5</td><td>3</td>" in html  # the rejected call does not count
    assert "<td>Running now</td><td>1</td><td>unlimited</td>" in html
