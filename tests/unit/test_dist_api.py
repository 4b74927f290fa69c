"""The distributor API end to end, in-process, on SQLite and MariaDB: the happy path, keys,
offers, request bodies and the OpenAPI document (the world: `dist_world`)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dist_world import (
    API,
    admit,
    assert_error,
    bearer,
    clear_of_period_end,
    counters,
    created,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    finish,
    link,
    make_distributor,
    make_pipeline,
    make_world,
    set_row,
    usage_rows,
)

from app.core.clock import utcnow
from modules.pipeline_dist.key_format import generate_key
from conftest import every_database

pytestmark = every_database

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


async def test_openapi_documents_the_api(dist_admin):
    await make_world(dist_admin)
    r = await dist_admin.api("GET", "/schema/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    paths = {p for p in doc["paths"] if p.startswith(API)}
    assert paths == {f"{API}/pipelines", f"{API}/pipelines/{{code}}", f"{API}/pipelines/{{code}}/calls",
                     f"{API}/calls/{{call_id}}/finish", f"{API}/usage", f"{API}/quota", f"{API}/statements/{{month}}"}
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
