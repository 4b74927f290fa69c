"""The distributor API documents itself: an OpenAPI document of its own endpoints only, valid,
with examples and the error shape, and a docs page with a getting-started guide; both readable
without a login and without any asset from outside the server (the operators' /schema too)."""
from __future__ import annotations

import re

from conftest import ADMIN_PASSWORD, Operator, every_database

pytestmark = every_database

API = "/api/dist/v1"
EXPECTED = {f"{API}/pipelines", f"{API}/pipelines/{{code}}", f"{API}/pipelines/{{code}}/calls",
            f"{API}/calls/{{call_id}}/finish", f"{API}/usage", f"{API}/quota", f"{API}/statements/{{month}}"}


def external_urls(text: str, own: str) -> list[str]:
    """http(s) URLs in `text` that point anywhere but this server (`own`)."""
    return [u for u in re.findall(r"https?://[^\s\"'<>)]+", text) if not u.startswith(own)]


async def test_distributor_openapi_lists_only_its_paths_and_validates(live_app):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    _, client = live_app
    r = await client.get(f"{API}/openapi.json")  # no login, no key
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc["paths"]) == EXPECTED
    errors = [e.message for e in OPENAPI_31_VALIDATOR.iter_errors(doc)]
    assert errors == [], errors[:3]
    assert doc["servers"] == [{"url": str(client.base_url).rstrip("/")}]
    assert set(doc["components"]["securitySchemes"]) == {"DistributorKey", "DistributorApiKey"}
    assert "ErrorBody" in doc["components"]["schemas"]
    assert not any(name.startswith(("Pipeline", "Distributor")) and name.endswith("Create")
                   for name in doc["components"]["schemas"])  # nothing of the admin API came along
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', r.text))
    assert refs <= set(doc["components"]["schemas"])  # every reference resolves
    admit = doc["paths"][f"{API}/pipelines/{{code}}/calls"]["post"]
    assert admit["responses"]["201"]["content"]["application/json"]["example"]["status"] == "running"
    refused = admit["responses"]["429"]["content"]["application/json"]["example"]["error"]
    assert refused["code"] == "rate_limited" and refused["limit"]


async def test_docs_page_needs_no_login_and_nothing_from_outside(live_app):
    _, client = live_app
    own = str(client.base_url).rstrip("/")
    page = await client.get(f"{API}/docs")
    assert page.status_code == 200, page.text
    assert external_urls(page.text, own) == []
    csp = page.headers["content-security-policy"]
    assert "http" not in csp and "'unsafe-inline'" not in csp
    for section in ("auth", "pipelines", "calls", "idempotency", "limits", "usage"):
        assert f'id="{section}"' in page.text
    commands = re.findall(r"<pre id=\"c-[a-z]+\">(.*?)</pre>", page.text, re.S)
    assert len(commands) >= 8 and all("curl" in c or "export" in c for c in commands)
    assert f"export BASE={own}{API}" in page.text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert (await client.get(asset)).status_code == 200, asset
    assert 'data-spec="/api/dist/v1/openapi.json"' in page.text


async def test_operator_schema_uses_local_assets(live_app):
    _, client = live_app
    op = Operator(client)
    assert (await op.login("admin", ADMIN_PASSWORD)).status_code == 303
    own = str(client.base_url).rstrip("/")
    for path in ("/schema", "/schema/swagger"):
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert external_urls(page.text, own) == [], path
        assert "<script>" not in page.text and "swagger-init.js" in page.text
        assert "http" not in page.headers["content-security-policy"]
    assert (await client.get("/schema/openapi.json")).status_code == 200
