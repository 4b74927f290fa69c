"""Every route the app serves, walked as anonymous, as a user without grants and as an admin:
default deny holds everywhere, and nothing the app serves is missing from the registration."""
from __future__ import annotations

from helpers import ADMIN_PASSWORD, Operator, concrete, routes


DIST_DOCS = {"/api/dist/v1/openapi.json", "/api/dist/v1/docs"}


async def test_every_route_is_guarded(live_app, db_url):
    from app.auth import rbac
    from app.core.db import make_engine
    from app.auth.principal import path_allowed

    app, client = live_app
    settings = app.state.ctx.settings
    engine = make_engine(db_url)
    await rbac.add_user(engine, "nobody", "nobody-Passw0rd", "test.nogrants")
    registered = set(await rbac.registered_paths(engine))
    await engine.dispose()

    admin = Operator(client)
    assert (await admin.login("admin", ADMIN_PASSWORD)).status_code == 303
    created = (await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "walk", "name": "Walk"})).json()
    ids = {"pipelines": created["id"]}
    public = settings.rbac_defaults.get("any", []) + settings.rbac_defaults.get("anonymous", [])
    logined = public + settings.rbac_defaults.get("logined", [])

    all_routes = routes(app)
    assert len(all_routes) > 100
    missing = sorted({rbac.permission_path(p) for _, p in all_routes} - registered)
    assert not missing, f"served but not registered: {missing}"

    results = {}
    for who in ("anonymous", "nobody", "admin"):
        client.cookies.clear()
        op = Operator(client)
        await client.get("/login")
        if who != "anonymous":
            password = ADMIN_PASSWORD if who == "admin" else "nobody-Passw0rd"
            assert (await op.login(who, password)).status_code == 303
        for method, template in all_routes:
            if template in ("/logout",):
                continue
            path = concrete(template, ids)
            r = await op.api(method, path, headers={"accept": "application/json"}
                             if template.startswith("/api/") else {}, follow_redirects=False)
            results[(who, method, template)] = r.status_code
            grants = public if who == "anonymous" else logined
            if template in DIST_DOCS:  # the distributor's own documentation: open to anyone, no key
                assert r.status_code == 200, (who, method, path, r.status_code)
            elif template.startswith("/api/dist/"):
                # keyed by API key, not by session: no key is a 401 for everyone
                assert r.status_code == 401, (who, method, path, r.status_code)
            elif path_allowed(grants, path):
                assert r.status_code not in (401, 403), (who, method, path, r.status_code, r.text[:200])
            elif who == "anonymous":
                assert r.status_code == 401 or (r.status_code == 303 and r.headers["location"].startswith("/login")), \
                    (who, method, path, r.status_code)
            elif who == "nobody":
                assert r.status_code == 403, (who, method, path, r.status_code, r.text[:200])
            else:
                assert r.status_code not in (401, 403), (who, method, path, r.status_code, r.text[:300])
    # the walk covered the CRUD pages and API of every table
    assert sum(1 for (who, m, t) in results if who == "admin" and t.startswith("/api/")) > 40
