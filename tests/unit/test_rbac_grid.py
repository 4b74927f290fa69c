"""Issue 13, point 6, the roles × paths grid: grants held through a wildcard shown apart from direct
ones, paths grouped by module and kind, search, and role presets in one audited transaction."""
from __future__ import annotations

import json
import re

import pytest
from rbac_world import ADMIN_PW, world, world_settings  # noqa: F401 - fixtures

from app.web.rbac_admin.grid import RoleGrants, groups, kind_of, rows_of
from app.web.rbac_admin.presets import preset_paths

PW = "grid-Passw0rd-1"
GET, POST = frozenset({"GET"}), frozenset({"GET", "POST"})
SERVED = {
    "/pipeline_core/pipelines": GET, "/pipeline_core/pipelines/{id}": GET,
    "/pipeline_core/pipelines/export.csv": GET, "/pipeline_core/pipelines/new": POST,
    "/pipeline_core/pipelines/{id}/publish": frozenset({"POST"}), "/api/pipeline_core/pipelines": POST,
    "/system/audit_log": GET, "/login": POST, "/": GET,
}


@pytest.mark.parametrize("path, methods, kind", [
    ("/pipeline_core/pipelines", GET, "page"),
    ("/pipeline_core/pipelines/new", POST, "action"),
    ("/pipeline_core/pipelines/{id}/publish", frozenset({"POST"}), "action"),
    ("/api/pipeline_core/pipelines", GET, "api"),
    ("/api/pipeline_core/pipelines/{id}", frozenset({"PUT", "DELETE"}), "api"),
    ("/pipeline_core/**", None, "wildcard"),
    ("/pipeline_core%", None, "wildcard"),
    ("/other_app/page", None, "other"),
])
def test_kind_of_a_path(path, methods, kind):
    assert kind_of(path, methods) == kind


def test_rows_are_grouped_by_module_then_kind():
    paths = [(str(i), p) for i, p in enumerate([*SERVED, "/pipeline_core/**", "/api/pipeline_core/**", "/zz/x"])]
    rows = rows_of(paths, SERVED, ["pipeline_core", "system"])
    got = [(m, k, [r.path for r in rs]) for m, k, rs in groups(rows)]
    assert got[:4] == [
        ("pipeline_core", "page", ["/pipeline_core/pipelines", "/pipeline_core/pipelines/export.csv",
                                   "/pipeline_core/pipelines/{id}"]),
        ("pipeline_core", "action", ["/pipeline_core/pipelines/new", "/pipeline_core/pipelines/{id}/publish"]),
        ("pipeline_core", "api", ["/api/pipeline_core/pipelines"]),
        ("pipeline_core", "wildcard", ["/api/pipeline_core/**", "/pipeline_core/**"]),
    ]
    assert [g[:2] for g in got[4:]] == [("system", "page"), ("", "page"), ("login", "action"), ("zz", "other")]


def test_how_a_role_holds_a_path():
    by_key = {"pipeline.*": {"/system/audit_log"}, "*.admin": {"/rbac/**"}}
    role = RoleGrants("pipeline.admin", {"/pipeline_core/**", "/login"}, by_key)
    assert role.holding("/login").state == "direct"
    assert role.holding("/pipeline_core/**").state == "direct"
    via = role.holding("/pipeline_core/pipelines/{id}")
    assert (via.state, via.through) == ("via", "/pipeline_core/**")
    assert role.holding("/system/audit_log").through == "pipeline.*: /system/audit_log"
    assert role.holding("/rbac/grants/edit").through == "*.admin: /rbac/**"
    assert role.holding("/api/pipeline_core/pipelines").state == "none"
    assert RoleGrants("ops.viewer", {"/t/{id}"}, {}).holding("/t/new").state == "none"


def test_presets():
    assert preset_paths("viewer", "pipeline_core", SERVED) == [
        "/pipeline_core/pipelines", "/pipeline_core/pipelines/export.csv", "/pipeline_core/pipelines/{id}"]
    assert preset_paths("operator", "pipeline_core", SERVED) == sorted(
        p for p in SERVED if "pipeline_core" in p)
    assert preset_paths("admin", "system", SERVED) == ["/system/**", "/api/system/**"]


def cell(html: str, role: str, path: str) -> str:
    """The grid's button (or read-only mark) for role × path."""
    m = re.search(r'<(?:button|span)[^>]*class="cell (\w+)"[^>]*aria-label="' + re.escape(f"{role} {path}:")
                  + r'[^"]*"(?: title="([^"]*)")?', html)
    assert m, f"no cell for {role} × {path}"
    return m.group(1) + (f" {m.group(2)}" if m.group(2) else "")


async def test_the_grid_shows_wildcard_grants_apart_from_direct_ones(world):
    await world.grant("ops.viewer", "/pipeline_core/pipelines")
    await world.grant("pipeline.*", "/system/audit_log")
    op = await world.as_user("admin", ADMIN_PW)
    html = (await op.client.get("/rbac/grants", params={"module": "pipeline_core"})).text
    assert cell(html, "pipeline.admin", "/pipeline_core/**") == "on"
    assert cell(html, "pipeline.admin", "/pipeline_core/pipelines") == "via /pipeline_core/**"
    assert cell(html, "pipeline.admin", "/pipeline_core/pipelines/{id}/edit") == "via /pipeline_core/**"
    assert cell(html, "ops.viewer", "/pipeline_core/pipelines") == "on"
    assert cell(html, "ops.viewer", "/pipeline_core/pipelines/{id}") == "off"
    assert "经 /pipeline_core/**，点击直接授权" in html
    html = (await op.client.get("/rbac/grants", params={"q": "audit_log", "module": "system"})).text
    # the role's own wildcard first, then its wildcard forms' grants
    assert cell(html, "pipeline.admin", "/system/audit_log") == "via /system/**"
    assert cell(html, "pipeline.*", "/system/audit_log") == "on"
    # grouped: module · kind headers, in that order
    html = (await op.client.get("/rbac/grants", params={"module": "pipeline_core"})).text
    heads = re.findall(r'<tr class="group"><th scope="colgroup" colspan="\d+"><span class="title">(\w+) · (\S+)', html)
    assert heads[:4] == [("pipeline_core", "页面"), ("pipeline_core", "操作"), ("pipeline_core", "JSON"),
                         ("pipeline_core", "通配授权")]


async def test_a_wildcard_role_form_shows_where_a_grant_comes_from(world):
    await world.grant("pipeline.*", "/metrics/**")
    await world.user("vic", PW, "pipeline.viewer")
    op = await world.as_user("admin", ADMIN_PW)
    html = (await op.client.get("/rbac/grants", params={"q": "/metrics"})).text
    assert cell(html, "pipeline.viewer", "/metrics") == "via pipeline.*: /metrics/**"
    assert cell(html, "pipeline.admin", "/metrics") == "on"


async def test_search_filters_and_kinds(world):
    op = await world.as_user("admin", ADMIN_PW)
    html = (await op.client.get("/rbac/grants", params={"kind": "api", "module": "pipeline_dist"})).text
    rows = re.findall(r'<tr class="path-row"><th scope="row" class="mono">([^<]+)</th>', html)
    assert rows and all(p.startswith("/api/pipeline_dist/") for p in rows)
    html = (await op.client.get("/rbac/grants", params={"q": "EXPORT.CSV"})).text
    rows = re.findall(r'<tr class="path-row"><th scope="row" class="mono">([^<]+)</th>', html)
    assert rows and all(p.endswith("/export.csv") for p in rows)
    html = (await op.client.get("/rbac/grants", params={"role": "admin", "q": "/login"})).text
    assert re.findall(r'<th scope="col" class="role-col">([^<]+)</th>', html) == ["pipeline.admin"]
    html = (await op.client.get("/rbac/grants", params={"q": "no-such-path"})).text
    assert "没有符合条件的路径" in html and "0 条路径" in html


async def test_a_preset_is_one_audited_transaction(world):
    await world.user("vic", PW, "ops.viewer")
    viewer, _ = await world.ids("ops.viewer")
    op = await world.as_user("admin", ADMIN_PW)
    r = await op.form("/rbac/presets", {"role_id": viewer, "module": "pipeline_core", "preset": "viewer",
                                        "back": "/rbac/grants?module=pipeline_core"})
    assert r.status_code == 303 and r.headers["location"] == "/rbac/grants?module=pipeline_core"
    page = (await op.client.get(r.headers["location"])).text
    granted = await world.links("ops.viewer")
    assert "/pipeline_core/pipelines" in granted and "/pipeline_core/pipelines/new" not in granted
    assert not any(p.startswith("/api/") for p in granted)
    assert f"新增 {len(granted)} 项授权" in page
    [audit] = await world.audit("rolepermission")
    detail = json.loads(audit.after_json)
    assert audit.action == "preset" and audit.row_id == viewer and sorted(detail["added"]) == sorted(granted)
    assert detail["role"] == "ops.viewer" and detail["preset"] == "viewer"
    # again: nothing new; an admin preset adds the module's wildcards
    await op.form("/rbac/presets", {"role_id": viewer, "module": "pipeline_core", "preset": "viewer"})
    assert await world.links("ops.viewer") == granted
    r = await op.form("/rbac/presets", {"role_id": viewer, "module": "pipeline_ops", "preset": "admin"})
    assert {"/pipeline_ops/**", "/api/pipeline_ops/**"} <= await world.links("ops.viewer")
    vic = await world.as_user("vic", PW)
    assert (await vic.client.get("/pipeline_core/pipelines")).status_code == 200
    assert (await vic.client.get("/pipeline_core/pipelines/new")).status_code == 403
    assert (await vic.client.get("/pipeline_ops/pipeline_pricing/new")).status_code == 200
    assert [a.action for a in await world.audit("rolepermission")] == ["preset", "preset", "preset"]


async def test_a_preset_the_actor_does_not_hold_writes_nothing(world):
    await world.grant("test.granter", "/rbac/grants", "/rbac/presets", "/pipeline_core/**")
    await world.user("gina", PW, "test.granter")
    await world.grant("lib.empty")
    empty, _ = await world.ids("lib.empty")
    op = await world.as_user("gina", PW)
    r = await op.form("/rbac/presets", {"role_id": empty, "module": "pipeline_core", "preset": "operator"})
    assert r.status_code == 403 and "/api/pipeline_core/pipelines" in r.text
    assert await world.links("lib.empty") == set() and await world.audit("rolepermission") == []
    r = await op.form("/rbac/presets", {"role_id": empty, "module": "pipeline_core", "preset": "viewer"})
    assert r.status_code == 303 and await world.links("lib.empty")
    assert (await op.form("/rbac/presets", {"role_id": empty, "module": "nope", "preset": "viewer"})).status_code == 422


async def test_the_grid_is_read_only_without_the_edit_path(world):
    await world.grant("test.clerk", "/rbac/grants")
    await world.user("clerk", PW, "test.clerk")
    op = await world.as_user("clerk", PW)
    html = (await op.client.get("/rbac/grants", params={"module": "pipeline_core"})).text
    assert "只读：您没有修改授权的权限" in html
    assert '<form method="post"' not in html.split("<main>")[1]
    assert cell(html, "pipeline.admin", "/pipeline_core/pipelines") == "via /pipeline_core/**"


async def test_messages_speak_the_ui_language(world):
    op = await world.as_user("admin", ADMIN_PW)
    op.client.cookies.set("lang", "en")
    r = await op.form("/rbac/roles", {"key": "lib.tester"})
    page = (await op.client.get(r.headers["location"])).text
    assert "Role lib.tester created." in page and "已创建" not in page
    # a planted message is not shown
    op.client.cookies.set("pa_flash", "WyJvayIsICJoZWxsbyJd.0000", path="/rbac")
    assert "hello" not in (await op.client.get("/rbac/grants")).text
