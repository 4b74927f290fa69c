"""The RBAC admin page: grant and revoke with one click, users ↔ roles, only for its holders."""
from __future__ import annotations

import re

from helpers import ADMIN_PASSWORD, Operator


async def switch(op: Operator, username: str, password: str) -> None:
    """Log the (single) test client in as someone else."""
    op.client.cookies.clear()
    assert (await op.login(username, password)).status_code == 303


async def test_grant_and_revoke_a_path(admin, db_url):
    from app.auth import rbac
    from app.core.db import make_engine

    engine = make_engine(db_url)
    await rbac.add_user(engine, "viewer", "viewer-Passw0rd", "ops.viewer")
    await engine.dispose()

    page = await admin.client.get("/rbac/grants", params={"q": "/pipeline_core/pipelines", "module": "pipeline_core"})
    assert page.status_code == 200 and "ops.viewer" in page.text
    form = re.search(r'<input type="hidden" name="role_id" value="(\w+)"><input type="hidden" name="perm_id" '
                     r'value="(\w+)">\s*<input type="hidden" name="back" value="[^"]*">\s*'
                     r'<input type="hidden" name="op" value="grant">\s*<button[^>]*\s*aria-label="ops.viewer '
                     r'/pipeline_core/pipelines:', page.text)
    assert form, "no grant button for ops.viewer on /pipeline_core/pipelines"
    role_id, perm_id = form.groups()

    await switch(admin, "viewer", "viewer-Passw0rd")
    assert (await admin.client.get("/pipeline_core/pipelines")).status_code == 403
    assert (await admin.client.get("/rbac/grants")).status_code == 403

    await switch(admin, "admin", ADMIN_PASSWORD)
    no_csrf = await admin.client.post("/rbac/grants", data={"role_id": role_id, "perm_id": perm_id, "op": "grant"})
    assert no_csrf.status_code == 403
    r = await admin.form("/rbac/grants", {"role_id": role_id, "perm_id": perm_id, "op": "grant"})
    assert r.status_code == 303

    await switch(admin, "viewer", "viewer-Passw0rd")
    assert (await admin.client.get("/pipeline_core/pipelines")).status_code == 200

    await switch(admin, "admin", ADMIN_PASSWORD)
    r = await admin.form("/rbac/grants", {"role_id": role_id, "perm_id": perm_id, "op": "revoke"})
    assert r.status_code == 303
    audit = (await admin.api("GET", "/api/system/audit_log", params={"table_name": "rolepermission"})).json()
    assert [row["action"] for row in audit["rows"]] == ["revoke", "grant"]
    assert "ops.viewer" in audit["rows"][0]["after_json"]

    await switch(admin, "viewer", "viewer-Passw0rd")
    assert (await admin.client.get("/pipeline_core/pipelines")).status_code == 403


async def test_users_and_roles(admin, db_url):
    from app.auth import rbac
    from app.core.db import make_engine

    engine = make_engine(db_url)
    await rbac.add_user(engine, "carol", "carol-Passw0rd", "ops.viewer")
    await engine.dispose()
    page = await admin.client.get("/rbac/users", params={"q": "carol"})
    assert page.status_code == 200 and "carol" in page.text
    m = re.search(r'name="user_id" value="(\w+)"><input type="hidden" name="role_id" value="(\w+)">\s*'
                  r'<input type="hidden" name="op" value="add">\s*<button[^>]*\s*aria-label="carol pipeline.admin"',
                  page.text)
    assert m
    r = await admin.form("/rbac/users", {"user_id": m.group(1), "role_id": m.group(2), "op": "add"})
    assert r.status_code == 303
    await switch(admin, "carol", "carol-Passw0rd")
    assert (await admin.client.get("/pipeline_core/pipelines")).status_code == 200
