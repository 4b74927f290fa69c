"""Every response, whatever answered it (a route, the router, a middleware's refusal), carries
the request id and the security headers, and is logged and counted with its real status."""
from __future__ import annotations

import json

import pytest

from app.ops.observability import HTTP_REQUESTS

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _count(method: str, route: str, status: str) -> float:
    return HTTP_REQUESTS.labels(method, route, status)._value.get()


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/no/such/page", 404),
    ("DELETE", "/login", 405),
    ("GET", "/api/dist/v1/pipelines", 401),
])
async def test_router_and_middleware_answers_have_headers_and_real_status(live_app, method, path, status):
    app, client = live_app
    r = await client.request(method, path, headers={"X-Request-ID": "probe-123"})
    assert r.status_code == status
    assert r.headers["x-request-id"] == "probe-123"
    assert r.headers["x-content-type-options"] == "nosniff"
    log = app.state.ctx.settings.data_dir / "logs" / "access.log"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "probe-123"]
    assert mine and mine[-1]["status"] == status


async def test_refusals_are_not_counted_as_server_errors(live_app):
    _, client = live_app
    before = _count("POST", "/logout", "403")
    r = await client.post("/logout")  # no CSRF token: refused by the CSRF middleware
    assert r.status_code == 403
    assert _count("POST", "/logout", "403") == before + 1


async def test_distributor_refusals_and_html_errors_are_counted_as_themselves(live_app):
    _, client = live_app
    route = "/api/dist/v1/pipelines"
    before = {s: _count("GET", route, s) for s in ("401", "500")}
    r = await client.get(route, headers={"authorization": "Bearer pdk_" + "x" * 38})
    assert r.status_code == 401 and r.json()["error"]["status"] == 401
    assert _count("GET", route, "401") == before["401"] + 1 and _count("GET", route, "500") == before["500"]
    before_404 = _count("GET", "unmatched", "404")
    page = await client.get("/no/such/page", headers={"accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"
    assert _count("GET", "unmatched", "404") == before_404 + 1
