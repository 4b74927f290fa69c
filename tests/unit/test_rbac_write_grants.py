"""Issue 13, point 5: authorization is method-aware where it matters, nobody hands out what they do
not hold, and /metrics is not public. On SQLite and MariaDB (app and RBAC databases apart)."""
from __future__ import annotations

import pytest
from rbac_world import ADMIN_PW, world, world_settings  # noqa: F401 - fixtures

from app.auth.grants import GrantSet, covers
from app.auth.principal import Principal
from app.web.health import scraper_token

PW = "clerk-Passw0rd-1"


@pytest.mark.parametrize("held, wanted, expected", [
    ("/pipeline_core/**", "/pipeline_core/pipelines", True),
    ("/pipeline_core/**", "/pipeline_core/pipelines/{id}/edit", True),
    ("/pipeline_core/**", "/pipeline_core/**", True),
    ("/pipeline_core/**", "/pipeline_core", True),
    ("/pipeline_core/**", "/pipeline_corex", False),
    ("/pipeline_core/**", "/**", False),
    ("/pipeline_core/pipelines", "/pipeline_core/**", False),
    ("/rbac/grants", "/rbac/grants/edit", False),
    ("/rbac/grants", "/rbac/**", False),
    ("/**", "/rbac/**", True),
    ("/t/{id}", "/t/{x}", True),
    ("/t/{id}", "/t/new", False),       # a record grant never stands for a literal route
    ("/t/new", "/t/{id}", False),
    ("/t/{id}", "/t/**", False),
    ("/t/{id}/**", "/t/{id}/edit", True),
    ("/t%", "/t/x/**", True),
    ("", "/t", False),
    ("/t", "", False),
])
def test_which_grant_holds_which(held, wanted, expected):
    assert covers(held, wanted) is expected
    assert GrantSet([held]).covers(wanted) is expected


def test_a_principal_lists_what_it_does_not_hold():
    p = Principal("u", "u", frozenset(), ("/pipeline_core/**", "/rbac/grants"))
    wanted = ["/pipeline_core/pipelines", "/rbac/**", "/system/**", "/rbac/grants"]
    assert p.missing(wanted) == ["/rbac/**", "/system/**"]
    assert p.allows("/rbac/grants") and not p.may_write("/rbac/grants/edit")
    # an {id} grant opens a record's address, never a write's own literal permission path
    assert Principal("u", "u", frozenset(), ("/rbac/users/{id}",)).may_write("/rbac/users/edit") is False
    assert Principal("u", "u", frozenset(), ("/rbac/**",)).may_write("/rbac/users/edit") is True


@pytest.mark.parametrize("header, token, expected", [
    (None, "tok", None), ("", "tok", None), ("Basic dG9rOg==", "tok", None), ("Bearer tok", None, None),
    ("Bearer tok", "tok", True), ("bearer  tok ", "tok", True), ("Bearer tok2", "tok", False),
    ("Bearer ", "tok", False), ("Bearer TOK", "tok", False),
])
def test_the_scraper_token(header, token, expected):
    assert scraper_token(header, token) is expected


async def test_write_paths_are_registered_apart(world):
    from app.auth import rbac

    paths = rbac.app_paths(world.app)
    for path in ("/rbac/grants", "/rbac/grants/edit", "/rbac/users", "/rbac/users/edit", "/rbac/users/new",
                 "/rbac/users/{id}", "/rbac/users/{id}/password", "/rbac/users/{id}/status", "/rbac/users/{id}/org",
                 "/rbac/roles", "/rbac/presets"):
        assert path in paths, path
    engine = world.engine()
    try:
        assert {"/rbac/grants/edit", "/rbac/users/edit"} <= set(await rbac.registered_paths(engine))
    finally:
        await engine.dispose()


async def test_opening_the_grants_page_does_not_grant_changing_grants(world):
    """The attack of the issue: granted only /rbac/grants (and /rbac/users), POST the page's form
    and grant yourself /rbac/** and /system/**, or give yourself the admin role."""
    await world.grant("test.clerk", "/rbac/grants", "/rbac/users")
    clerk_id = await world.user("clerk", PW, "test.clerk")
    clerk_role, rbac_all = await world.ids("test.clerk", "/rbac/**")
    _, system_all = await world.ids("test.clerk", "/system/**")
    admin_role, _ = await world.ids("pipeline.admin")

    op = await world.as_user("clerk", PW)
    page = await op.client.get("/rbac/grants")
    assert page.status_code == 200
    assert 'method="post" action="/rbac/grants"' not in page.text, "no form for someone who may not use it"
    for perm in (rbac_all, system_all):
        r = await op.form("/rbac/grants", {"role_id": clerk_role, "perm_id": perm, "op": "grant"})
        assert r.status_code == 403, r.text[:300]
    r = await op.form("/rbac/users", {"user_id": clerk_id, "role_id": admin_role, "op": "add"})
    assert r.status_code == 403
    assert (await op.client.get("/system/audit_log")).status_code == 403
    assert await world.links("test.clerk") == {"/rbac/grants", "/rbac/users"}
    assert await world.audit("rolepermission") == [] and await world.audit("userrole") == []


async def test_nobody_grants_a_path_they_do_not_hold(world):
    await world.grant("test.granter", "/rbac/grants", "/rbac/grants/edit", "/pipeline_core/**")
    await world.user("gina", PW, "test.granter")
    await world.user("vic", PW, "ops.viewer")
    viewer, pipelines = await world.ids("ops.viewer", "/pipeline_core/pipelines")
    _, core_all = await world.ids("ops.viewer", "/pipeline_core/**")
    admin_role, system_all = await world.ids("pipeline.admin", "/system/**")

    op = await world.as_user("gina", PW)
    for perm in (pipelines, core_all):  # held: through /pipeline_core/**, or exactly
        r = await op.form("/rbac/grants", {"role_id": viewer, "perm_id": perm, "op": "grant"})
        assert r.status_code == 303
    for path in ("/rbac/**", "/rbac/users/edit", "/system/**", "/api/pipeline_core/**", "/metrics"):
        _, perm = await world.ids("ops.viewer", path)
        r = await op.form("/rbac/grants", {"role_id": viewer, "perm_id": perm, "op": "grant"})
        assert r.status_code == 403 and path in r.text, (path, r.status_code)
    # nor take away what they do not hold
    r = await op.form("/rbac/grants", {"role_id": admin_role, "perm_id": system_all, "op": "revoke"})
    assert r.status_code == 403
    assert await world.links("ops.viewer") == {"/pipeline_core/pipelines", "/pipeline_core/**"}
    assert "/system/**" in await world.links("pipeline.admin")
    assert [a.action for a in await world.audit("rolepermission")] == ["grant", "grant"]


async def test_nobody_gives_a_role_they_do_not_hold_every_path_of(world):
    await world.grant("test.usermgr", "/rbac/users", "/rbac/users/edit", "/pipeline_core/**")
    await world.grant("lib.reader", "/pipeline_core/pipelines")
    mgr_id = await world.user("mia", PW, "test.usermgr")
    carol_id = await world.user("carol", PW, "ops.viewer")
    reader, _ = await world.ids("lib.reader")
    admin_role, _ = await world.ids("pipeline.admin")

    op = await world.as_user("mia", PW)
    r = await op.form("/rbac/users", {"user_id": mgr_id, "role_id": admin_role, "op": "add"})
    assert r.status_code == 403 and "/system/**" in r.text
    r = await op.form("/rbac/users", {"user_id": carol_id, "role_id": reader, "op": "add"})
    assert r.status_code == 303
    # a grant to a wildcard form of the role (`lib.*`) comes with it, so it counts too
    await world.grant("lib.*", "/system/**")
    r = await op.form("/rbac/users", {"user_id": carol_id, "role_id": reader, "op": "remove"})
    assert r.status_code == 403 and "/system/**" in r.text
    r = await op.form("/rbac/users/new", {"username": "newbie", "password": PW, "password2": PW,
                                          "role_id": admin_role})
    assert r.status_code == 403
    from sqlalchemy import select

    from app.auth import rbac

    u = rbac.table("users")
    assert await world.rows(select(u.c.id).where(u.c.username == "newbie")) == []
    assert [a.action for a in await world.audit("userrole")] == ["role_add"]


async def test_acting_on_a_user_needs_every_path_they_hold(world):
    await world.grant("test.helpdesk", "/rbac/users", "/rbac/users/{id}", "/rbac/users/{id}/password",
                      "/rbac/users/{id}/status", "/pipeline_core/**")
    await world.user("hal", PW, "test.helpdesk")
    carol_id = await world.user("carol", PW, "ops.viewer")
    admin_id = await world.user_id("admin")
    op = await world.as_user("hal", PW)
    new = {"password": "brand-new-Pass-1", "password2": "brand-new-Pass-1"}
    r = await op.form(f"/rbac/users/{admin_id}/password", new)
    assert r.status_code == 403 and "/system/**" in r.text
    r = await op.form(f"/rbac/users/{admin_id}/status", {"status": "disabled"})
    assert r.status_code == 403
    assert (await op.form(f"/rbac/users/{carol_id}/password", new)).status_code == 303
    # not granted /rbac/users/{id}/org: its own path, refused before the handler
    assert (await op.form(f"/rbac/users/{carol_id}/org", {"orgid": "pipeline-app"})).status_code == 403
    await world.as_user("admin", ADMIN_PW)  # the admin's password did not change
    assert [a.action for a in await world.audit("users")] == ["password_reset"]


async def test_a_record_grant_does_not_open_a_named_write(world):
    """`/rbac/users/{id}` (one user's page) must not stand for `/rbac/users/edit`."""
    await world.grant("test.looker", "/rbac/users", "/rbac/users/{id}", "/pipeline_core/**")
    await world.grant("lib.empty")  # a role with no paths: the holder check would let it through
    looker_id = await world.user("lou", PW, "test.looker")
    empty_role, _ = await world.ids("lib.empty")
    op = await world.as_user("lou", PW)
    assert (await op.client.get(f"/rbac/users/{looker_id}")).status_code == 200
    r = await op.form("/rbac/users", {"user_id": looker_id, "role_id": empty_role, "op": "add"})
    assert r.status_code == 403


async def test_metrics_is_not_public_by_default(world):
    assert "/metrics" not in world.settings.rbac_defaults["any"]
    assert "/metrics" not in await world.links("any")
    r = await world.client.get("/metrics", headers={"accept": "text/plain"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert (await world.client.get("/metrics", headers={"accept": "application/json"})).status_code == 401
    # no token configured: a bearer header is nothing special
    assert (await world.client.get("/metrics", headers={"authorization": "Bearer x", "accept": "application/json"})
            ).status_code == 401
    await world.user("vic", PW, "ops.viewer")
    await world.as_user("vic", PW)
    assert (await world.client.get("/metrics")).status_code == 403
    await world.as_user("admin", ADMIN_PW)  # pipeline.admin holds /metrics by default
    r = await world.client.get("/metrics")
    assert r.status_code == 200 and "pipeline_http_requests_total" in r.text


@pytest.mark.parametrize("world_settings", [{"metrics_token": "scrape-Token-123"}])
async def test_metrics_opens_to_the_scrapers_bearer_token(world):
    good = {"authorization": "Bearer scrape-Token-123"}
    r = await world.client.get("/metrics", headers=good)
    assert r.status_code == 200 and "pipeline_http_requests_total" in r.text
    for wrong in ("Bearer scrape-Token-124", "Bearer ", "Bearer scrape-token-123"):
        r = await world.client.get("/metrics", headers={"authorization": wrong})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    # the token opens /metrics only
    r = await world.client.get("/pipeline_core/pipelines", headers={**good, "accept": "application/json"})
    assert r.status_code == 401
    # no header: the grants decide, as without a token
    assert (await world.client.get("/metrics", headers={"accept": "application/json"})).status_code == 401
