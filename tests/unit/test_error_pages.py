"""Errors for people and for programs: a browser gets a page in the app's layout and language
(404, 405, 500, 403 naming the missing path and whom to ask), an API client the one JSON shape;
every one carries the request id and security headers and is logged and counted as itself."""
from __future__ import annotations

import json

import pytest
from litestar import get
from litestar.enums import MediaType
from rbac_world import ADMIN_PW, world, world_settings  # noqa: F401 - fixtures

from app.ops.observability import HTTP_REQUESTS

BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PW = "viewer-Passw0rd-1"


def _count(method: str, route: str, status: str) -> float:
    return HTTP_REQUESTS.labels(method, route, status)._value.get()


def _access(world, rid: str) -> dict:
    log = world.settings.data_dir / "logs" / "access.log"
    return [json.loads(line) for line in log.read_text().splitlines() if rid in line][-1]


async def test_unknown_page_is_a_404_page_in_the_layout_and_language(world):
    await world.as_user("admin", ADMIN_PW)
    before = _count("GET", "unmatched", "404")
    r = await world.client.get("/pipeline_core/no-such-table", headers={**BROWSER, "x-request-id": "nf-1"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "页面不存在" in r.text and "/<wbr>pipeline_core/<wbr>no-such-table" in r.text
    assert 'class="top"' in r.text and "admin" in r.text  # the header, with the user and their menu
    assert "/pipeline_core/pipelines" in r.text
    assert r.headers["x-request-id"] == "nf-1" and "content-security-policy" in r.headers
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert _access(world, "nf-1")["status"] == 404
    assert _count("GET", "unmatched", "404") == before + 1
    world.client.cookies.set("lang", "en")
    r = await world.client.get("/pipeline_core/no-such-table", headers=BROWSER)
    assert r.status_code == 404 and "Page not found" in r.text and "页面不存在" not in r.text


async def test_missing_record_is_the_same_page(world):
    await world.as_user("admin", ADMIN_PW)
    r = await world.client.get("/pipeline_core/pipelines/0123456789abcdef0123456789abcdef", headers=BROWSER)
    assert r.status_code == 404 and "页面不存在" in r.text and 'class="top"' in r.text


async def test_api_clients_get_the_json_shape(world):
    await world.as_user("admin", ADMIN_PW)
    for path, headers in (("/api/pipeline_core/nothing", BROWSER), ("/pipeline_core/nothing",
                                                                    {"accept": "application/json"})):
        r = await world.client.get(path, headers={**headers, "x-request-id": "api-404"})
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == "not_found" and r.headers["x-request-id"] == "api-404"
    r = await world.client.get("/api/pipeline_core/pipelines/0123456789abcdef")
    assert r.status_code == 404 and r.json()["error"]["status"] == 404


async def test_wrong_method_is_a_405_page(world):
    await world.as_user("admin", ADMIN_PW)
    r = await world.client.get("/pipeline_core/pipelines/bulk", headers={**BROWSER, "x-request-id": "m-405"})
    assert r.status_code == 405 and "不支持此操作" in r.text
    assert "GET /<wbr>pipeline_core/<wbr>pipelines/<wbr>bulk" in r.text
    assert 'class="top"' in r.text and "content-security-policy" in r.headers
    assert _access(world, "m-405")["status"] == 405
    r = await world.client.delete("/login", headers={"accept": "application/json"})
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_a_server_error_shows_its_request_id_not_a_traceback(world):
    @get("/pipeline_core/boom", include_in_schema=False, media_type=MediaType.HTML)
    async def boom() -> str:  # a page that fails
        raise ZeroDivisionError("secret internals 0xdeadbeef")

    world.app.register(boom)
    await world.as_user("admin", ADMIN_PW)
    r = await world.client.get("/pipeline_core/boom", headers={**BROWSER, "x-request-id": "boom-500"})
    assert r.status_code == 500 and "服务器出错" in r.text and "boom-500" in r.text
    assert "ZeroDivisionError" not in r.text and "deadbeef" not in r.text and "Traceback" not in r.text
    assert 'class="top"' in r.text and _access(world, "boom-500")["status"] == 500
    r = await world.client.get("/pipeline_core/boom", headers={"accept": "application/json"})
    assert r.status_code == 500 and r.json()["error"] == {"status": 500, "code": "internal_error",
                                                          "message": "internal error"}


async def test_403_page_names_the_missing_path_and_the_grant_admins(world):
    await world.user("vic", PW, "ops.viewer")
    await world.user("gwen", "gwen-Passw0rd-1", "ops.granter")
    await world.grant("ops.granter", "/rbac/grants/edit")
    await world.grant("ops.viewer", "/pipeline_core/pipelines")
    await world.as_user("vic", PW)
    r = await world.client.get("/pipeline_core/pipelines/abc/edit", headers=BROWSER)
    assert r.status_code == 403 and "无权访问" in r.text
    assert '<code id="missing-path">/pipeline_core/pipelines/{id}/edit</code>' in r.text
    assert "<li>admin</li>" in r.text and "<li>gwen</li>" in r.text and "<li>vic</li>" not in r.text
    assert "ops.viewer" in r.text  # the user's own roles
    r = await world.client.get("/pipeline_core/pipelines/abc/edit", headers={"accept": "application/json"})
    assert r.status_code == 403 and "/pipeline_core/pipelines/{id}/edit" in r.json()["error"]["message"]
    # an action: the form's post is refused with its own path
    r = await world.op.form("/pipeline_core/pipelines/abc/publish", {}, headers=BROWSER)
    assert r.status_code == 403 and "/pipeline_core/pipelines/{id}/publish" in r.text


@pytest.mark.parametrize("world_settings", [{"access_contact": "IT 服务台 it@example.com"}])
async def test_403_page_shows_the_configured_contact(world):
    await world.user("vic", PW, "ops.viewer")
    await world.as_user("vic", PW)
    world.client.cookies.set("lang", "en")
    r = await world.client.get("/pipeline_ops/pipeline_pricing", headers=BROWSER)
    assert r.status_code == 403 and "Access denied" in r.text and "IT 服务台 it@example.com" in r.text
    assert "/pipeline_ops/pipeline_pricing" in r.text and "无权访问" not in r.text


async def test_a_form_sent_after_the_session_ended_goes_to_the_login_page(world):
    r = await world.client.post("/pipeline_core/pipelines/abc/publish", data={"note": "x"}, follow_redirects=False,
                                headers={**BROWSER, "referer": "http://testserver.local/pipeline_core/pipelines/abc"})
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/pipeline_core/pipelines/abc"
    r = await world.client.post("/pipeline_core/pipelines/abc/publish", data={"note": "x"}, follow_redirects=False,
                                headers={**BROWSER, "referer": "https://evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    r = await world.client.post("/pipeline_core/pipelines/abc/publish", json={})  # a script: the status
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
