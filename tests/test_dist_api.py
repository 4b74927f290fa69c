"""The distributor API end to end, in-process, on SQLite and MariaDB (design: distributor-api.md).

Data is set up the way an operator would (the admin JSON API: pipeline, step, price, publish,
capacity, distributor, link, generate_key); only what no operator can do (move a call's lease,
backdate a key) is written straight to the database.
"""
from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.core.clock import utcnow
from modules.pipeline_dist import admission as adm
from modules.pipeline_dist.limits import DIST_CALLS, DistError, periods
from modules.pipeline_dist.stores import open_store
from modules.pipeline_dist.key_format import generate_key

API = "/api/dist/v1"


@pytest.fixture
async def dist_admin(admin):
    """The admin, plus an engine and a store on the test's own event loop for direct reads and
    sweeps (the in-process app runs on another loop, so its engines cannot be used from here)."""
    from app.core.db import make_engine

    ctx = admin.ctx
    ctx.extras["dist"].keys.ttl = 0  # revocation visible at once in tests (the cache has its own test)
    admin.engine = make_engine(ctx.settings.database)
    admin.store = await open_store(ctx.settings, admin.engine, ctx.catalog)
    yield admin
    await admin.store.close()
    await admin.engine.dispose()


@dataclass
class World:
    admin: Any
    code: str
    pipeline_id: str
    distributor_id: str
    link_id: str
    capacity_id: str | None
    key: str

    @property
    def client(self):
        return self.admin.client

    @property
    def ctx(self):
        return self.admin.ctx

    @property
    def engine(self):
        return self.admin.engine

    @property
    def store(self):
        """A store of this (test) event loop: like another worker's (the app runs on its own loop)."""
        return self.admin.store


async def created(admin, path: str, body: dict) -> dict:
    r = await admin.api("POST", path, json=body)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


async def make_pipeline(admin, code: str, *, publish: bool = True, price: str = "0.02") -> str:
    p = await created(admin, "/api/pipeline_core/pipelines", {"code": code, "name": f"Pipeline {code}",
                                                              "status": "active"})
    await created(admin, "/api/pipeline_core/pipeline_steps", {"pipeline_id": p["id"], "seq": 1, "name": "extract",
                                                               "step_type": "transform"})
    await created(admin, "/api/pipeline_ops/pipeline_pricing", {
        "pipeline_id": p["id"], "billing_unit": "call", "price_mode": "unit", "unit_price": price, "currency": "CNY",
        "effective_from": "2020-01-01 00:00:00", "status": "active"})
    if publish:
        await created(admin, f"/api/pipeline_core/pipelines/{p['id']}/publish", {"note": "first"})
    return p["id"]


async def make_distributor(admin, **fields: Any) -> tuple[str, str]:
    d = await created(admin, "/api/pipeline_dist/distributors",
                      {"name": "dist-" + secrets.token_hex(4), "status": "active", **fields})
    key = (await created(admin, f"/api/pipeline_dist/distributors/{d['id']}/generate_key", {}))["api_key"]
    return d["id"], key


async def link(admin, distributor_id: str, pipeline_id: str, **fields: Any) -> str:
    return (await created(admin, "/api/pipeline_dist/distributor_pipeline",
                          {"distributor_id": distributor_id, "pipeline_id": pipeline_id, "enabled": "1",
                           **fields}))["id"]


async def make_world(admin, *, dist: dict | None = None, link_fields: dict | None = None,
                     capacity: dict | None = None, code: str = "ocr") -> World:
    pipeline_id = await make_pipeline(admin, code)
    capacity_id = None
    if capacity is not None:
        capacity_id = (await created(admin, "/api/pipeline_ops/pipeline_capacity",
                                     {"pipeline_id": pipeline_id, "status": "active", **capacity}))["id"]
    distributor_id, key = await make_distributor(admin, **(dist or {}))
    link_id = await link(admin, distributor_id, pipeline_id, **(link_fields or {}))
    return World(admin, code, pipeline_id, distributor_id, link_id, capacity_id, key)


async def clear_of_period_end(settings, margin: float = 30) -> None:
    """Quota periods end at local midnight: a test that fills a daily quota must not straddle one."""
    _, _, to_midnight, _ = periods(settings.business_timezone, utcnow())
    if to_midnight <= margin:
        await asyncio.sleep(to_midnight + 1)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def admit(w: World, request_id: str | None = None, *, key: str | None = None, code: str | None = None,
                **body: Any):
    body = {"request_id": request_id or secrets.token_hex(8), **body}
    return await w.client.post(f"{API}/pipelines/{code or w.code}/calls", json=body, headers=bearer(key or w.key))


async def finish(w: World, call_id: str, status: str = "succeeded", *, key: str | None = None, **body: Any):
    return await w.client.post(f"{API}/calls/{call_id}/finish", json={"status": status, **body},
                               headers=bearer(key or w.key))


async def set_row(w: World, table: str, row_id: str, **values: Any) -> None:
    t = w.ctx.catalog.tables[table].table
    async with w.engine.begin() as conn:
        await conn.execute(update(t).where(t.c.id == row_id).values(**values))


async def usage_rows(w: World) -> list[dict]:
    t = w.ctx.catalog.tables["pipeline_usage_log"].table
    async with w.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(t).where(t.c.distributor_id == w.distributor_id))]


async def counters(w: World) -> dict[str, int]:
    t = w.ctx.catalog.tables["quota_counters"].table
    async with w.engine.connect() as conn:
        return {r.id: r.used for r in await conn.execute(select(t.c.id, t.c.used))}


def assert_error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["status"] == status and err["message"]
    if code:
        assert err["code"] == code
    return err


# ---- the happy path ------------------------------------------------------------------------------------

async def test_admit_finish_usage_quota(dist_admin):
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, dist={"daily_quota": 100}, capacity={"max_concurrency": 5})
    r = await admit(w, "req-1", units=2)
    assert r.status_code == 201, r.text
    call = r.json()
    assert call["pipeline"] == "ocr" and call["version_no"] == 1 and call["status"] == "running"
    assert (call["unit_price"], call["amount"], call["currency"]) == ("0.020000", "0.040000", "CNY")
    assert call["started_at"].endswith("Z") and call["lease_expires_at"] > call["started_at"]
    quotas = {q["limit"]: q for q in call["quotas"]}
    assert quotas["distributor.daily"] == {"limit": "distributor.daily", "max": 100, "used": 1, "remaining": 99,
                                           "reset": quotas["distributor.daily"]["reset"]}
    assert quotas["pipeline.concurrency"]["remaining"] == 4 and quotas["pipeline.concurrency"]["reset"] is None
    assert r.headers["RateLimit-Limit"] == "100" and r.headers["RateLimit-Remaining"] == "99"
    row = (await usage_rows(w))[0]
    assert row["status"] == "running" and str(row["unit_price"]) == "0.020000" and row["client_ip"]

    done = await finish(w, call["call_id"], units=3)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["units"], body["amount"]) == ("succeeded", 3, "0.060000")
    assert body["finished_at"] and body["latency_ms"] >= 0
    again = await finish(w, call["call_id"], "failed", units=9)  # harmless: the settled call
    assert again.status_code == 200 and again.json() == body
    assert (await counters(w))[f"pipe:{w.pipeline_id}|C"] == 0

    r = await w.client.get(f"{API}/usage", headers=bearer(w.key))
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert len(rows) == 1 and rows[0]["pipeline"] == "ocr" and rows[0]["calls"] == 1
    assert (rows[0]["succeeded"], rows[0]["units"], rows[0]["amount"]) == (1, 3, "0.060000")
    r = await w.client.get(f"{API}/usage", params={"from": "2000-01-01", "to": "2000-01-31"}, headers=bearer(w.key))
    assert r.status_code == 200 and r.json()["rows"] == []
    assert_error(await w.client.get(f"{API}/usage", params={"from": "yesterday"}, headers=bearer(w.key)), 400)
    assert_error(await w.client.get(f"{API}/usage", params={"from": "2026-02-01", "to": "2026-01-01"},
                                    headers=bearer(w.key)), 400)

    r = await w.client.get(f"{API}/quota", headers=bearer(w.key))
    assert r.status_code == 200, r.text
    report = r.json()
    assert {q["limit"]: q["remaining"] for q in report["distributor"]} == {"distributor.daily": 99,
                                                                           "distributor.concurrency": None}
    assert report["pipelines"][0]["pipeline"] == "ocr"
    assert {q["limit"]: (q["max"], q["used"]) for q in report["pipelines"][0]["quotas"]} == {
        "pipeline.concurrency": (5, 0)}


async def test_listing_and_detail(dist_admin):
    w = await make_world(dist_admin)
    other = await make_pipeline(dist_admin, "not-linked")
    assert other
    r = await w.client.get(f"{API}/pipelines", headers=bearer(w.key))
    assert r.status_code == 200, r.text
    assert [(p["code"], p["version_no"], p["price"]["unit_price"]) for p in r.json()] == [("ocr", 1, "0.020000")]
    await set_row(w, "distributor_pipeline", w.link_id, price_mode="package", package_units=100,
                  package_price="1.5")
    r = await w.client.get(f"{API}/pipelines/ocr", headers=bearer(w.key))
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["price"]["mode"] == "package" and detail["price"]["package_price"] == "1.500000"
    assert [(s["seq"], s["name"]) for s in detail["steps"]] == [(1, "extract")]
    # a draft edit after publishing is not what callers see
    await created(dist_admin, "/api/pipeline_core/pipeline_steps", {"pipeline_id": w.pipeline_id, "seq": 2,
                                                               "name": "draft-only", "step_type": "transform"})
    assert [s["name"] for s in (await w.client.get(f"{API}/pipelines/ocr", headers=bearer(w.key))).json()["steps"]] \
        == ["extract"]
    assert_error(await w.client.get(f"{API}/pipelines/not-linked", headers=bearer(w.key)), 404)
    # package price: 150 units on 100-unit packages = 2 packages
    r = await admit(w, units=150)
    assert r.status_code == 201 and r.json()["amount"] == "3.000000", r.text
    done = await finish(w, r.json()["call_id"], units=250)
    assert done.json()["amount"] == "4.500000", done.text


# ---- keys ---------------------------------------------------------------------------------------------

async def test_key_problems_are_one_401(dist_admin):
    w = await make_world(dist_admin)
    assert (await admit(w)).status_code == 201
    assert (await w.client.get(f"{API}/pipelines", headers={"X-API-Key": w.key})).status_code == 200
    url = f"{API}/pipelines"
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {w.key}"},
        "malformed": bearer("pdk_oops"),
        "bad checksum": bearer(w.key[:-1] + ("A" if w.key[-1] != "A" else "B")),
        "unknown": bearer(generate_key()),
    }
    shapes = []
    for name, headers in cases.items():
        r = await w.client.get(url, headers=headers)
        shapes.append(assert_error(r, 401, "unauthorized"))
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), name
    r = await w.client.get(url, params={"api_key": w.key})
    assert_error(r, 401)
    assert len({str(s) for s in shapes}) == 1  # the caller learns nothing about which

    # a bad body with a bad key is still a 401: the key is checked first
    r = await w.client.post(f"{API}/pipelines/ocr/calls", content=b"{nope", headers=bearer(generate_key()))
    assert_error(r, 401)

    # expired (rotated away, past its grace) and suspended distributor
    await set_row(w, "distributors", w.distributor_id, key_expires_at=utcnow() - timedelta(seconds=1))
    assert_error(await admit(w), 401)
    await set_row(w, "distributors", w.distributor_id, key_expires_at=None)
    assert (await admit(w)).status_code == 201
    r = await dist_admin.api("PATCH", f"/api/pipeline_dist/distributors/{w.distributor_id}",
                             json={"status": "suspended"})
    assert r.status_code == 200, r.text
    assert_error(await admit(w), 401)
    assert_error(await w.client.get(url, headers=bearer(w.key)), 401)
    await dist_admin.api("PATCH", f"/api/pipeline_dist/distributors/{w.distributor_id}", json={"status": "active"})
    assert (await admit(w)).status_code == 201

    # revoked through the operator API
    r = await dist_admin.api("POST", f"/api/pipeline_dist/distributors/{w.distributor_id}/revoke_key", json={})
    assert r.status_code == 200, r.text
    assert_error(await admit(w), 401)


async def test_key_cache_expires_revocation_within_ttl(dist_admin):
    w = await make_world(dist_admin)
    keys = w.ctx.extras["dist"].keys
    keys.ttl = 0.5
    assert (await w.client.get(f"{API}/pipelines", headers=bearer(w.key))).status_code == 200
    await dist_admin.api("POST", f"/api/pipeline_dist/distributors/{w.distributor_id}/revoke_key", json={})
    assert (await w.client.get(f"{API}/pipelines", headers=bearer(w.key))).status_code == 200  # cached
    await asyncio.sleep(0.6)
    assert_error(await w.client.get(f"{API}/pipelines", headers=bearer(w.key)), 401)


# ---- offers -------------------------------------------------------------------------------------------

async def test_not_offered_is_404(dist_admin):
    w = await make_world(dist_admin)
    assert_error(await admit(w, code="no-such"), 404)
    await set_row(w, "distributor_pipeline", w.link_id, enabled="0")
    assert_error(await admit(w), 404, "not_found")
    await set_row(w, "distributor_pipeline", w.link_id, enabled="1", effective_to=utcnow() - timedelta(hours=1))
    assert_error(await admit(w), 404)
    assert (await w.client.get(f"{API}/pipelines", headers=bearer(w.key))).json() == []
    await set_row(w, "distributor_pipeline", w.link_id, effective_to=None, effective_from=utcnow() + timedelta(days=1))
    assert_error(await admit(w), 404)
    await set_row(w, "distributor_pipeline", w.link_id, effective_from=utcnow() - timedelta(days=1))
    assert (await admit(w)).status_code == 201
    await set_row(w, "pipelines", w.pipeline_id, status="disabled")
    assert_error(await admit(w), 404)

    draft = await make_pipeline(dist_admin, "draft", publish=False)
    await link(dist_admin, w.distributor_id, draft)
    assert_error(await admit(w, code="draft"), 404)
    assert_error(await w.client.get(f"{API}/pipelines/draft", headers=bearer(w.key)), 404)


async def test_other_distributors_call_is_404(dist_admin):
    w = await make_world(dist_admin, capacity={"max_concurrency": 5})
    call_id = (await admit(w, "mine")).json()["call_id"]
    other_id, other_key = await make_distributor(dist_admin)
    await link(dist_admin, other_id, w.pipeline_id)
    assert_error(await finish(w, call_id, key=other_key), 404)
    assert_error(await finish(w, "0" * 32), 404)
    # the same request_id is per distributor: the other one gets its own call
    r = await admit(w, "mine", key=other_key)
    assert r.status_code == 201 and r.json()["call_id"] != call_id
    assert (await finish(w, call_id)).json()["status"] == "succeeded"


# ---- bodies -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    (b"{not json", None),
    (b'{"request_id": "a", "units": "three"}', "units"),
    (b'{"request_id": "a", "extra": 1}', "extra"),
    (b'{"units": 1}', "request_id"),
    (b'{"request_id": "a", "units": -1}', "units"),
    (b'{"request_id": ""}', "request_id"),
    (b'{"request_id": "has space"}', "request_id"),
    (b'[]', None),
])
async def test_bad_admission_bodies(dist_admin, body, field):
    w = await make_world(dist_admin)
    r = await w.client.post(f"{API}/pipelines/ocr/calls", content=body,
                            headers={**bearer(w.key), "Content-Type": "application/json"})
    err = assert_error(r, 400)
    if field:
        assert field in str(err.get("fields") or err["message"]), err
    assert await usage_rows(w) == []


async def test_bad_finish_bodies(dist_admin):
    w = await make_world(dist_admin)
    call_id = (await admit(w)).json()["call_id"]
    for body in ({"status": "done"}, {"status": "succeeded", "units": 1.5}, {"status": "succeeded", "x": 1}, {}):
        assert_error(await w.client.post(f"{API}/calls/{call_id}/finish", json=body, headers=bearer(w.key)), 400)
    assert (await usage_rows(w))[0]["status"] == "running"


# ---- limits -------------------------------------------------------------------------------------------

LIMITS = {
    "distributor.daily": ("dist", {"daily_quota": 2}),
    "distributor.monthly": ("dist", {"monthly_quota": 2}),
    "link.daily": ("link", {"daily_quota": 2}),
    "link.monthly": ("link", {"monthly_quota": 2}),
    "pipeline.daily": ("capacity", {"daily_quota": 2}),
    "pipeline.monthly": ("capacity", {"monthly_quota": 2}),
    "pipeline.concurrency": ("capacity", {"max_concurrency": 2}),
    "distributor.concurrency": ("dist", {"max_concurrency": 2}),
}


@pytest.mark.parametrize("name", list(LIMITS))
async def test_each_limit(dist_admin, name):
    where, fields = LIMITS[name]
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, dist=fields if where == "dist" else None,
                         link_fields=fields if where == "link" else None,
                         capacity=fields if where == "capacity" else {})
    first = [await admit(w) for _ in range(2)]
    assert [r.status_code for r in first] == [201, 201], first[-1].text
    r = await admit(w, "over")
    err = assert_error(r, 429, "rate_limited")
    assert err["limit"] == name
    assert r.headers["RateLimit-Limit"] == r.headers["X-RateLimit-Limit"] == "2"
    assert r.headers["RateLimit-Remaining"] == r.headers["X-RateLimit-Remaining"] == "0"
    reset = int(r.headers["RateLimit-Reset"])
    assert int(r.headers["Retry-After"]) == reset == int(r.headers["X-RateLimit-Reset"])
    if name.endswith("concurrency"):
        assert reset == 1
        await finish(w, first[0].json()["call_id"])
        again = await admit(w, "over")  # a 429 leaves no row: the same request_id is admitted later
        assert again.status_code == 201, again.text
    else:
        assert 0 < reset <= (86400 if name.endswith("daily") else 31 * 86400) + 3600
        await finish(w, first[0].json()["call_id"])
        assert_error(await admit(w, "over"), 429)  # finishing never gives a quota back
    rows = await usage_rows(w)
    assert all(row["request_id"] != "over" or row["status"] == "running" for row in rows)
    assert DIST_CALLS.labels("rejected", name)._value.get() >= 1
    await assert_counters_match_usage(w)


async def test_limit_zero_refuses_at_once(dist_admin):
    w = await make_world(dist_admin, link_fields={"daily_quota": 0})
    err = assert_error(await admit(w), 429)
    assert err["limit"] == "link.daily"
    assert await counters(w) == {}  # nothing touched


async def test_lease_expiry_frees_the_slot(dist_admin):
    w = await make_world(dist_admin, capacity={"max_concurrency": 1})
    call_id = (await admit(w)).json()["call_id"]
    assert_error(await admit(w), 429)
    assert await adm.sweep(w.store) == 0  # lease not over yet
    await set_row(w, "pipeline_usage_log", call_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    swept = await asyncio.gather(adm.sweep(w.store), adm.sweep(w.store))  # two workers at once
    assert sorted(swept) == [0, 1]
    assert (await counters(w))[f"pipe:{w.pipeline_id}|C"] == 0
    r = await admit(w)
    assert r.status_code == 201, r.text
    late = await finish(w, call_id)  # the crashed client comes back: harmless, still expired
    assert late.status_code == 200 and late.json()["status"] == "expired"
    assert (await counters(w))[f"pipe:{w.pipeline_id}|C"] == 1
    await assert_counters_match_usage(w)


async def test_sweeper_task_runs(dist_admin):
    w = await make_world(dist_admin, capacity={"max_concurrency": 1})
    call_id = (await admit(w)).json()["call_id"]
    await set_row(w, "pipeline_usage_log", call_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    sweeper = adm.Sweeper(w.store, w.ctx.settings)
    sweeper.interval = 0.05
    sweeper.start()
    try:
        for _ in range(100):
            if (await usage_rows(w))[0]["status"] == "expired":
                break
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert (await usage_rows(w))[0]["status"] == "expired"


# ---- settings changes and the per-worker context cache ------------------------------------------------

async def test_operator_changes_reach_the_next_admission_on_every_worker(dist_admin):
    """Workers cache admission contexts; a change made through the app still decides the very next
    call on every worker, and one made behind the app's back (plain SQL) within the cache's TTL."""
    from sqlalchemy import text

    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, capacity={}, link_fields={"daily_quota": 100})
    app_store = dist_admin.ctx.extras["dist"].store

    async def other_worker(request_id: str) -> adm.Admitted:  # the test's own store: another worker
        return await adm.admit(w.store, w.ctx.settings, distributor_id=w.distributor_id, code=w.code,
                               request_id=request_id, units=1, client_ip=None)

    async def change_link(**values: Any) -> None:
        r = await dist_admin.api("PATCH", f"/api/pipeline_dist/distributor_pipeline/{w.link_id}", json=values)
        assert r.status_code == 200, r.text

    assert (await admit(w)).json()["unit_price"] == "0.020000"
    assert (await other_worker("w2-1")).call["unit_price"] == Decimal("0.02")
    await change_link(price_mode="unit", unit_price="0.05")
    assert (await admit(w)).json()["unit_price"] == "0.050000"
    assert (await other_worker("w2-2")).call["unit_price"] == Decimal("0.05")

    await change_link(daily_quota=4)  # 4 calls made today: the next one is over, on both workers
    assert assert_error(await admit(w), 429)["limit"] == "link.daily"
    with pytest.raises(DistError) as refused:
        await other_worker("w2-3")
    assert (refused.value.status, refused.value.limit.name) == (429, "link.daily")
    await change_link(daily_quota=100)
    assert (await admit(w)).status_code == 201
    assert (await other_worker("w2-4")).call["status"] == "running"

    for store in (app_store, w.store):
        if hasattr(store, "contexts"):
            store.contexts.ttl = 0.3
    async with w.engine.begin() as conn:  # text(): not a write the app can see
        await conn.execute(text("UPDATE pipelines SET status = 'disabled' WHERE id = :id"), {"id": w.pipeline_id})
    await asyncio.sleep(0.4)
    assert_error(await admit(w), 404)
    with pytest.raises(DistError) as refused:
        await other_worker("w2-5")
    assert refused.value.status == 404
    await assert_counters_match_usage(w)


async def test_a_limit_set_mid_period_counts_the_calls_already_made(dist_admin):
    """A daily quota of 4 set after 3 calls today leaves one call, not four."""
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin)
    assert [(await admit(w)).status_code for _ in range(3)] == [201] * 3
    r = await dist_admin.api("PATCH", f"/api/pipeline_dist/distributor_pipeline/{w.link_id}", json={"daily_quota": 4})
    assert r.status_code == 200, r.text
    last = await admit(w)
    assert last.status_code == 201 and last.headers["RateLimit-Remaining"] == "0", last.text
    assert assert_error(await admit(w), 429)["limit"] == "link.daily"
    await assert_counters_match_usage(w)


async def test_writes_through_the_app_bump_the_context_version(dist_admin):
    """The counter the cache checks moves with every write of a cached table, and only then."""
    from sqlalchemy import text

    async def version() -> int:
        async with dist_admin.engine.connect() as conn:
            return (await conn.execute(text("SELECT version FROM table_versions WHERE name = 'dist_context'"))
                    ).scalar() or 0

    before = await version()
    w = await make_world(dist_admin)  # pipeline, step, price, publish, distributor, key, link: all through the app
    setup = await version()
    assert setup > before
    assert (await dist_admin.api("GET", f"/api/pipeline_dist/distributor_pipeline/{w.link_id}")).status_code == 200
    assert (await admit(w)).status_code == 201  # calls and counters are not cached tables
    assert await version() == setup
    await set_row(w, "distributors", w.distributor_id, daily_quota=5)
    assert await version() == setup + 1


# ---- idempotency ---------------------------------------------------------------------------------------

async def test_same_request_id_is_one_call(dist_admin):
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, dist={"daily_quota": 10}, capacity={"max_concurrency": 10})
    first = await admit(w, "same", units=2)
    second = await admit(w, "same", units=5)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    a, b = first.json(), second.json()
    assert {k: v for k, v in a.items() if k != "quotas"} == {k: v for k, v in b.items() if k != "quotas"}
    assert len(await usage_rows(w)) == 1
    day = periods(w.ctx.settings.business_timezone, utcnow())[0]
    assert (await counters(w))[f"dist:{w.distributor_id}|{day}"] == 1
    # the same request_id for another pipeline is a conflict, not a second call
    other = await make_pipeline(dist_admin, "other")
    await link(dist_admin, w.distributor_id, other)
    assert_error(await admit(w, "same", code="other"), 409)


async def test_same_request_id_race(dist_admin):
    w = await make_world(dist_admin, dist={"daily_quota": 10}, capacity={"max_concurrency": 10})
    results = await asyncio.gather(*[admit(w, "twin") for _ in range(6)])
    assert sorted(r.status_code for r in results) == [200] * 5 + [201], [r.text for r in results]
    assert len({r.json()["call_id"] for r in results}) == 1
    assert len(await usage_rows(w)) == 1
    await assert_counters_match_usage(w)


def batch_sizes(store) -> list[int]:
    """Sizes of the batches a MariaDB store sends from now on (empty elsewhere: no batches)."""
    sizes: list[int] = []
    for batcher in (getattr(store, "admissions", None), getattr(store, "finishes", None)):
        if batcher is not None:
            run = batcher.run

            async def recorded(items, run=run):
                sizes.append(len(items))
                return await run(items)

            batcher.run = recorded
    return sizes


async def test_each_call_of_a_batch_is_decided_on_its_own(dist_admin):
    """Simultaneous admissions on one worker: on MariaDB they share batches; each is still decided
    alone: the quota admits exactly its room, the rest are 429s, twins are one call."""
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, link_fields={"daily_quota": 5}, capacity={"max_concurrency": 100})
    settings = w.ctx.settings

    async def attempt(request_id: str) -> tuple[str, str]:
        try:
            got = await adm.admit(w.store, settings, distributor_id=w.distributor_id, code=w.code,
                                  request_id=request_id, units=1, client_ip=None)
        except DistError as exc:
            return request_id, f"{exc.status} {exc.limit.name if exc.limit else ''}"
        return request_id, ("replayed " if got.replayed else "admitted ") + got.call["id"]

    # today's counters exist and this worker's context is cached: the usual case, batched
    assert (await attempt("warm"))[1].startswith("admitted")
    sizes = batch_sizes(w.store)
    outcomes = await asyncio.gather(*[attempt(f"r{i}") for i in range(10)], attempt("twin"), attempt("twin"))
    admitted = [o for _, o in outcomes if o.startswith("admitted")]
    refused = [o for _, o in outcomes if o.startswith("429")]
    assert len(admitted) == 4 and all(o == "429 link.daily" for o in refused), outcomes
    twins = [o for rid, o in outcomes if rid == "twin"]
    if twins[0].startswith("429"):
        assert twins == ["429 link.daily"] * 2
    else:
        assert sorted(o.split()[0] for o in twins) == ["admitted", "replayed"]
        assert twins[0].split()[1] == twins[1].split()[1]  # one call, the same call_id
    assert len(await usage_rows(w)) == 5
    await assert_counters_match_usage(w)
    if w.engine.dialect.name != "sqlite":
        assert max(sizes) > 1, sizes  # the admissions did share batches

    # finishing each call twice at once, and another distributor's call: each settles once
    calls = [o.split()[1] for _, o in outcomes if o.startswith("admitted")]
    stranger, _ = await make_distributor(dist_admin)
    sizes.clear()

    async def settle(call_id: str, distributor_id: str = w.distributor_id) -> str:
        try:
            row = await adm.finish(w.store, distributor_id=distributor_id, call_id=call_id, status="succeeded",
                                   units=None)
        except DistError as exc:
            return str(exc.status)
        return row["status"]

    results = await asyncio.gather(*[settle(c) for c in calls * 2], settle(calls[0], stranger))
    assert results == ["succeeded"] * 8 + ["404"]
    running = [r for r in await usage_rows(w) if r["status"] == "running"]
    assert [r["request_id"] for r in running] == ["warm"]
    await assert_counters_match_usage(w)
    if w.engine.dialect.name != "sqlite":
        assert max(sizes) > 1, sizes


async def test_batches_on_overlapping_counters_do_not_deadlock(dist_admin):
    """Two workers, two distributors each on two pipelines, calls interleaved at random: batches
    lock overlapping counters in one order, so no call ends as a deadlock victim (503 busy) and
    every counter still equals its recount."""
    await clear_of_period_end(dist_admin.ctx.settings)
    settings = dist_admin.ctx.settings
    pipelines = [await make_pipeline(dist_admin, code) for code in ("pa", "pb")]
    distributors = [(await make_distributor(dist_admin))[0] for _ in range(2)]
    for d in distributors:
        for p in pipelines:
            await link(dist_admin, d, p)
    stores = [dist_admin.store, await open_store(settings, dist_admin.engine, dist_admin.ctx.catalog)]
    pairs = [(d, code) for d in distributors for code in ("pa", "pb")]
    rng = random.Random(5)
    answers: list[str] = []

    async def caller(n: int) -> None:
        for i in range(12):
            store, (d, code) = rng.choice(stores), rng.choice(pairs)
            try:
                call = await adm.admit(store, settings, distributor_id=d, code=code, request_id=f"c{n}-{i}",
                                       units=1, client_ip=None)
                row = await adm.finish(rng.choice(stores), distributor_id=d, call_id=call.call["id"],
                                       status="succeeded", units=None)
                answers.append(row["status"])
            except DistError as exc:
                answers.append(f"{exc.status} {exc.message}")

    try:
        for d, code in pairs:  # today's counters exist, every context is cached on both stores
            for store in stores:
                await adm.admit(store, settings, distributor_id=d, code=code, request_id=secrets.token_hex(8),
                                units=1, client_ip=None)
        await asyncio.gather(*[caller(n) for n in range(40)])
    finally:
        await stores[1].close()
    assert answers == ["succeeded"] * 480, sorted(set(answers))
    t = dist_admin.ctx.catalog.tables["pipeline_usage_log"].table
    for d in distributors:
        w = World(dist_admin, "pa", pipelines[0], d, "", None, "")
        async with dist_admin.engine.connect() as conn:
            calls = (await conn.execute(select(func.count()).where(t.c.distributor_id == d))).scalar_one()
        day = periods(settings.business_timezone, utcnow())[0]
        assert (await counters(w))[f"dist:{d}|{day}"] == calls


async def test_openapi_documents_the_api(dist_admin):
    await make_world(dist_admin)
    r = await dist_admin.api("GET", "/schema/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    paths = {p for p in doc["paths"] if p.startswith(API)}
    assert paths == {f"{API}/pipelines", f"{API}/pipelines/{{code}}", f"{API}/pipelines/{{code}}/calls",
                     f"{API}/calls/{{call_id}}/finish", f"{API}/usage", f"{API}/quota"}
    admit_op = doc["paths"][f"{API}/pipelines/{{code}}/calls"]["post"]
    assert {"200", "201", "400", "401", "404", "409", "429"} <= set(admit_op["responses"])
    finish_op = doc["paths"][f"{API}/calls/{{call_id}}/finish"]["post"]
    for op, status in ((admit_op, "201"), (admit_op, "200"), (finish_op, "200")):
        schema = op["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/CallOut"), (status, schema)
    assert admit_op["security"]
    assert "DistributorKey" in doc["components"]["securitySchemes"]
    schema = doc["components"]["schemas"]["AdmitIn"]
    assert schema["properties"]["request_id"]["examples"] and schema["required"] == ["request_id"]


# ---- helpers ------------------------------------------------------------------------------------------

async def assert_counters_match_usage(w: World) -> None:
    """Every counter equals a recount of the usage log: quotas count the calls of their scope
    (all calls of these tests are today's), concurrency counts the calls running now."""
    u = w.ctx.catalog.tables["pipeline_usage_log"].table
    scopes = {f"dist:{w.distributor_id}": u.c.distributor_id == w.distributor_id,
              f"pipe:{w.pipeline_id}": u.c.pipeline_id == w.pipeline_id,
              f"link:{w.distributor_id}:{w.pipeline_id}": (u.c.distributor_id == w.distributor_id)
              & (u.c.pipeline_id == w.pipeline_id)}
    got = await counters(w)
    async with w.engine.connect() as conn:
        for cid, used in got.items():
            scope, _, period = cid.partition("|")
            if scope not in scopes:
                continue
            where = [scopes[scope]] + ([u.c.status == "running"] if period == "C" else [])
            assert used == (await conn.execute(select(func.count()).where(*where))).scalar_one(), cid
