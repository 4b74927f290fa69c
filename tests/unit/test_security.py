"""Security sweeps over every route: CSRF on every cookie-authenticated write, no secret anywhere
a person or a log can read it, and the security headers on HTML pages."""

from __future__ import annotations

import io
import re

import openpyxl
from helpers import ADMIN_PASSWORD, Operator, concrete, routes

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


async def test_every_write_needs_the_csrf_token(admin):
    created = (await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "c1", "name": "C1"})).json()
    ids = {"pipelines": created["id"]}
    checked = 0
    for method, template in routes(admin.app):
        if method not in WRITES or template.startswith("/api/dist/"):
            continue
        path = concrete(template, ids)
        for headers in ({}, {"x-csrftoken": "forged-token"}):
            r = await admin.client.request(
                method, path, headers=headers, follow_redirects=False, json={} if template.startswith("/api/") else None
            )
            assert r.status_code == 403, (method, path, headers, r.status_code, r.text[:200])
        checked += 1
    assert checked > 40
    # nothing was changed by any of the refused writes
    assert (await admin.api("GET", f"/api/pipeline_core/pipelines/{created['id']}")).json()["name"] == "C1"
    # the login form is protected too (no login CSRF)
    admin.client.cookies.clear()
    r = await admin.client.post("/login", data={"username": "admin", "password": "x"}, follow_redirects=False)
    assert r.status_code == 403


async def test_no_secret_in_pages_json_exports_or_logs(admin, db_url):
    from app.auth import rbac
    from app.core.db import make_engine
    from modules.pipeline_dist.key_format import key_hash

    d = (await admin.api("POST", "/api/pipeline_dist/distributors", json={"name": "Secretive"})).json()
    key = (await admin.api("POST", f"/api/pipeline_dist/distributors/{d['id']}/generate_key", json={})).json()[
        "api_key"
    ]
    rotated = (await admin.api("POST", f"/api/pipeline_dist/distributors/{d['id']}/rotate_key", json={})).json()[
        "api_key"
    ]
    settings = admin.app.state.ctx.settings
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        from sqlalchemy import select

        users = rbac.table("users")
        password_hash = (await conn.execute(select(users.c.password).where(users.c.username == "admin"))).scalar_one()
    await engine.dispose()
    secrets = {
        key,
        rotated,
        key_hash(key, settings.key_secret),
        key_hash(rotated, settings.key_secret),
        password_hash,
        ADMIN_PASSWORD,
    }
    assert password_hash.startswith("$argon2")

    pages = ["/", "/me", "/rbac/grants", "/rbac/users", "/pipeline_ops/usage_daily"]
    for t in admin.app.state.ctx.catalog.tables.values():
        if t.view["internal"]:
            continue
        pages += [t.base, t.api, f"{t.base}/export.csv", f"{t.api}?rows=500"]
    pages += [
        f"/pipeline_dist/distributors/{d['id']}",
        f"/api/pipeline_dist/distributors/{d['id']}",
        f"/pipeline_dist/distributors/{d['id']}/edit",
    ]
    audit = (await admin.api("GET", "/api/system/audit_log", params={"rows": 500})).json()["rows"]
    pages += [f"/system/audit_log/{row['id']}" for row in audit]
    seen = 0
    for path in pages:
        r = await admin.client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        for s in secrets:
            assert s not in r.text, (path, "leaks a secret")
        seen += 1
    xlsx = await admin.client.get("/pipeline_dist/distributors/export.xlsx")
    cells = repr(list(openpyxl.load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True)))
    assert "Secretive" in cells and not any(s in cells for s in secrets)
    logs = "".join(p.read_text() for p in (settings.data_dir / "logs").glob("*.log"))
    assert logs.count("\n") > seen
    for s in secrets:
        assert s not in logs


async def test_security_headers_on_html_pages(admin):
    for path in ("/", "/pipeline_core/pipelines", "/pipeline_core/pipelines/new", "/login"):
        r = await admin.client.get(path)
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"])
    api = await admin.client.get("/api/pipeline_core/pipelines")
    assert api.headers["x-content-type-options"] == "nosniff"


async def test_session_cookie_flags_and_fixation(live_app):
    app, client = live_app
    op = Operator(client)
    await client.get("/login")
    client.cookies.set("pa_session", "attacker-chosen-session-id")
    r = await op.login("admin", ADMIN_PASSWORD)
    cookie = r.headers["set-cookie"]
    assert "pa_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    issued = re.search(r"pa_session=([^;]+)", cookie).group(1)
    assert issued != "attacker-chosen-session-id" and len(issued) >= 32
