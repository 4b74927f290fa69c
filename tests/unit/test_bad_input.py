"""Bad input gets a clear error naming the field, and the table is unchanged."""
from __future__ import annotations

import pytest


async def count(admin, api: str) -> int:
    return (await admin.api("GET", api, params={"rows": 1})).json()["total"]


@pytest.fixture
async def pipeline(admin):
    r = await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "base", "name": "Base"})
    assert r.status_code == 201
    return r.json()


@pytest.mark.parametrize("body,field", [
    ({"code": "ok1", "name": "N", "status": 5}, "status"),
    ({"code": "ok2", "name": "x" * 256}, "name"),
    ({"code": "Not A Slug", "name": "N3"}, "code"),
    ({"code": "ok4", "name": "N4", "status": "deleted"}, "status"),
    ({"code": "ok5", "name": "N5", "password": "x"}, "password"),
    ({"code": "ok6", "name": "N6", "id": "0" * 32}, "id"),
    ({"code": "ok7", "name": "N7", "published_version": 9}, "published_version"),
    ({"code": "base", "name": "Other"}, "code"),
    ({"name": "missing code"}, "code"),
])
async def test_bad_pipeline_bodies(admin, pipeline, body, field):
    api = "/api/pipeline_core/pipelines"
    before = await count(admin, api)
    r = await admin.api("POST", api, json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"], r.json()
    assert await count(admin, api) == before


@pytest.mark.parametrize("body,field", [
    ({"seq": "abc", "name": "s"}, "seq"),
    ({"seq": 0, "name": "s"}, "seq"),
    ({"seq": 1.5, "name": "s"}, "seq"),
    ({"seq": 1, "name": "s", "timeout_s": True}, "timeout_s"),
    ({"seq": 1, "name": "s", "config": "{not json"}, "config"),
    ({"seq": 1, "name": "s", "retries": 11}, "retries"),
    ({"seq": 99999999999, "name": "s"}, "seq"),
])
async def test_bad_step_bodies(admin, pipeline, body, field):
    api = "/api/pipeline_core/pipeline_steps"
    before = await count(admin, api)
    r = await admin.api("POST", api, json={"pipeline_id": pipeline["id"], **body})
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"]
    assert await count(admin, api) == before


async def test_unknown_pipeline_reference_is_named(admin):
    r = await admin.api("POST", "/api/pipeline_core/pipeline_steps",
                        json={"pipeline_id": "f" * 32, "seq": 1, "name": "s"})
    assert r.status_code == 422 and "pipeline_id" in r.json()["error"]["fields"]


async def test_money_keeps_its_scale(admin, pipeline):
    r = await admin.api("POST", "/api/pipeline_ops/pipeline_pricing", json={
        "pipeline_id": pipeline["id"], "unit_price": "0.1234567", "effective_from": "2026-01-01T00:00:00"})
    assert r.status_code == 422 and "unit_price" in r.json()["error"]["fields"]
    r = await admin.api("POST", "/api/pipeline_ops/pipeline_pricing", json={
        "pipeline_id": pipeline["id"], "unit_price": "12345678.123456", "effective_from": "2026-01-01T00:00:00"})
    assert r.status_code == 201, r.text
    assert r.json()["unit_price"] == "12345678.123456"


@pytest.mark.parametrize("query,status", [
    ({"sort": "password"}, 400),
    ({"sort": "name;DROP TABLE pipelines"}, 400),
    ({"nosuchparam": "1"}, 400),
    ({"status": "' OR 1=1 --"}, 400),
    ({"rows": "-1"}, 400),
    ({"page": "abc"}, 400),
])
async def test_bad_list_parameters(admin, pipeline, query, status):
    r = await admin.api("GET", "/api/pipeline_core/pipelines", params=query)
    assert r.status_code == status, r.text
    assert r.json()["error"]["fields"]


async def test_sql_in_search_and_filters_matches_nothing_and_changes_nothing(admin, pipeline):
    api = "/api/pipeline_core/pipelines"
    for q in ("' OR '1'='1", "%' OR 1=1 --", "\\'; DROP TABLE pipelines; --", "%", "_"):
        r = await admin.api("GET", api, params={"q": q})
        assert r.status_code == 200 and r.json()["total"] == 0, (q, r.text)
    r = await admin.api("GET", "/api/pipeline_core/pipeline_steps", params={"pipeline_id": "x' OR '1'='1"})
    assert r.status_code == 200 and r.json()["total"] == 0
    assert await count(admin, api) == 1
    html = await admin.client.get("/pipeline_core/pipelines", params={"q": "<script>alert(1)</script>"})
    assert html.status_code == 200 and "<script>alert(1)</script>" not in html.text


async def test_not_json_and_wrong_shapes(admin, pipeline):
    api = "/api/pipeline_core/pipelines"
    r = await admin.api("POST", api, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = await admin.api("POST", api, json=["a", "list"])
    assert r.status_code == 400 and "error" in r.json()
    r = await admin.api("PATCH", f"{api}/{pipeline['id']}", json={"name": None})
    assert r.status_code == 422 and "name" in r.json()["error"]["fields"]
    assert (await admin.api("GET", f"{api}/{pipeline['id']}")).json()["name"] == "Base"


async def test_form_shows_the_error_next_to_the_field(admin, pipeline):
    await admin.client.get("/pipeline_core/pipelines/new")
    r = await admin.form("/pipeline_core/pipelines/new", {"code": "base", "name": "Dup", "status": "draft"})
    assert r.status_code == 422
    assert 'id="f-code-error" role="alert">已存在' in r.text  # in the page's language (Chinese by default)
    assert await count(admin, "/api/pipeline_core/pipelines") == 1
