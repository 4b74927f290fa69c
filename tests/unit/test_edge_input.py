"""Input at the edges (issue 15): nested thousands deep, pages past any list, days at the
calendar's ends. Each is a 400/422 in the one error shape, or a clamped page, never a 5xx."""
from __future__ import annotations

DEEP = "[" * 5000 + "]" * 5000


async def test_json_nested_thousands_deep_is_a_400(admin):
    r = await admin.api("POST", "/api/pipeline_core/pipelines", content=DEEP,
                        headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"


async def test_a_json_field_nested_thousands_deep_is_a_422_naming_the_field(admin):
    r = await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "deep", "name": "Deep"})
    assert r.status_code == 201, r.text
    pipeline_id = r.json()["id"]
    r = await admin.api("POST", "/api/pipeline_core/pipeline_steps",
                        json={"pipeline_id": pipeline_id, "seq": 1, "name": "s", "config": DEEP})
    assert r.status_code == 422, r.text
    assert "nested too deeply" in r.json()["error"]["fields"]["config"]


async def test_a_page_past_any_list_is_a_400(admin):
    for path in ("/api/pipeline_core/pipelines", "/pipeline_core/pipelines"):
        r = await admin.api("GET", path + "?page=999999999999999999999", headers={"accept": "application/json"})
        assert r.status_code == 400, (path, r.status_code)
        assert "page" in r.json()["error"]["fields"]


async def test_report_days_at_the_calendar_edges_are_clamped(admin):
    for query in ("to=9999-12-31", "from=0001-01-01&to=0001-01-01", "from=0001-01-01"):
        r = await admin.api("GET", "/pipeline_ops/usage_daily?" + query)
        assert r.status_code == 200, (query, r.status_code)


async def test_distributor_usage_at_the_calendar_edges_is_a_400_or_clamped(admin):
    from dist_world import bearer, make_world

    w = await make_world(admin)
    for query, status in (("to=9999-12-31", 200), ("from=0001-01-01&to=0001-01-01", 200),
                          ("from=0001-01-01", 400)):
        r = await w.client.get("/api/dist/v1/usage?" + query, headers=bearer(w.key))
        assert r.status_code == status, (query, r.text)
    r = await w.client.post(f"/api/dist/v1/pipelines/{w.code}/calls", content=DEEP,
                            headers={**bearer(w.key), "content-type": "application/json"})
    assert r.status_code == 400


async def test_language_switch_returns_only_to_local_paths(admin):
    cases = {"//evil.example/x": "/", "http://evil.example/x": "/", "/pipeline_core/pipelines?page=2":
             "/pipeline_core/pipelines?page=2", "http://testserver.local/pipeline_core/pipelines":
             "/pipeline_core/pipelines", "/\\evil.example": "/"}
    for referer, back in cases.items():
        r = await admin.client.get("/lang/en", headers={"referer": referer}, follow_redirects=False)
        assert r.status_code in (302, 303, 307), referer
        assert r.headers["location"] == back, (referer, r.headers["location"])


async def test_units_times_price_past_the_amount_column_is_a_422_and_the_call_stays_finishable(admin):
    from dist_world import admit, bearer, finish, make_world

    w = await make_world(admin)  # price 0.02 a unit: 10^15 units bill 2·10^13, past DECIMAL(18,6)
    r = await w.client.post(f"/api/dist/v1/pipelines/{w.code}/calls", json={"request_id": "huge", "units": 10**15},
                            headers=bearer(w.key))
    assert r.status_code == 422, r.text
    call = (await admit(w, "small")).json()
    assert (await finish(w, call["call_id"], units=10**15)).status_code == 422
    done = await finish(w, call["call_id"], units=2)
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
