"""Path authorization: default deny, 401 or a login redirect for anonymous callers, 403 without a
grant, cached grants. On SQLite and MariaDB, RBAC in a database of its own (`auth_env`)."""
from __future__ import annotations

from conftest import AUTH_USERS, app_settings, prepare_databases
from litestar import get
from litestar.testing import AsyncTestClient
from sqlalchemy import event, select

from app.auth import rbac

ADMIN_PW, VIEWER_PW = AUTH_USERS["admin"][0], AUTH_USERS["viewer"][0]


# ---------------------------------------------------------------- authorization

async def test_anonymous_is_sent_to_login_or_gets_401(auth_env):
    r = await auth_env.client.get("/pipeline_core/pipelines?page=2", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=/pipeline_core/pipelines")
    r = await auth_env.client.get("/api/pipeline_core/pipelines")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await auth_env.client.get("/pipeline_core/pipelines", headers={"accept": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["status"] == 401
    assert (await auth_env.op.me()).status_code == 401
    for public in ("/", "/login", "/healthz", "/static/app.css"):
        assert (await auth_env.client.get(public, follow_redirects=False)).status_code == 200, public


async def test_logged_in_without_grant_gets_403(auth_env):
    await auth_env.op.login("viewer", VIEWER_PW)
    page = await auth_env.client.get("/pipeline_core/pipelines")
    assert page.status_code == 403 and "无权访问" in page.text
    assert 'name="_csrf_token"' in page.text  # the logout form on the denied page still works
    api = await auth_env.client.get("/api/pipeline_core/pipelines")
    assert api.status_code == 403 and api.json()["error"]["code"] == "forbidden"
    # a grant of `/pipeline_core/pipelines/{id}` opens a record, not the create page
    assert (await auth_env.client.get("/pipeline_core/pipelines/new")).status_code == 403
    assert (await auth_env.client.get("/pipeline_core/pipelines/0123456789abcdef")).status_code not in (401, 403)


async def test_unregistered_path_is_refused_to_everyone(auth_env):
    @get("/forgotten/page", sync_to_thread=False)
    def forgotten() -> str:
        return "secret"

    auth_env.app.register(forgotten)
    assert (await auth_env.client.get("/forgotten/page", follow_redirects=False)).status_code == 303
    r = await auth_env.client.get("/forgotten/page", headers={"accept": "application/json"})
    assert r.status_code == 401
    await auth_env.op.login("admin", ADMIN_PW)
    r = await auth_env.client.get("/forgotten/page")
    assert r.status_code == 403 and "secret" not in r.text


async def test_grants_are_cached_and_invalidate_drops_the_cache(auth_env):
    auth_env.ctx.settings.rbac_cache_seconds = 60
    await auth_env.op.login("viewer", VIEWER_PW)
    assert (await auth_env.client.get("/pipeline_core/pipelines")).status_code == 403
    engine = auth_env.rbac_db
    await rbac.register_paths(engine, [], {"pipeline.viewer": ["/pipeline_core/pipelines"]}, dry_run=False)
    assert (await auth_env.client.get("/pipeline_core/pipelines")).status_code == 200  # register invalidates
    rp, p = rbac.table("rolepermission"), rbac.table("permission")
    perm = await auth_env.scalar(engine, select(p.c.id).where(p.c.path == "/pipeline_core/pipelines"))
    async with engine.begin() as conn:  # revoked behind the app's back: cached for a while
        await conn.execute(rp.delete().where(rp.c.permid == perm))
    assert (await auth_env.client.get("/pipeline_core/pipelines")).status_code == 200
    rbac.invalidate()
    assert (await auth_env.client.get("/pipeline_core/pipelines")).status_code == 403


def _count_queries(engine, counter: list) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        counter.append(statement)


async def test_few_queries_per_request(auth_env):
    app_q, rbac_q = [], []
    _count_queries(auth_env.ctx.db, app_q)
    _count_queries(auth_env.ctx.rbac_db, rbac_q)
    await auth_env.client.get("/healthz")
    app_q.clear(), rbac_q.clear()
    await auth_env.client.get("/healthz")
    await auth_env.client.get("/static/app.css")
    assert app_q == [] and rbac_q == []  # anonymous, warm cache: no query at all
    auth_env.ctx.settings.session_cache_seconds = 0  # first without the session cache
    await auth_env.op.login("admin", ADMIN_PW)
    await auth_env.client.get("/me")
    app_q.clear(), rbac_q.clear()
    await auth_env.client.get("/me")
    assert len(app_q) == 1 and rbac_q == []  # the session row; user, roles and grants cached
    auth_env.ctx.settings.session_cache_seconds = 3
    await auth_env.client.get("/me")
    app_q.clear()
    await auth_env.client.get("/me")
    assert app_q == []  # the session row too, for session_cache_seconds
    app_q.clear()
    await auth_env.client.get("/healthz")
    assert app_q == []  # probes never read the session


async def test_no_redirect_loop_before_paths_are_registered(db_url, rbac_url, tmp_path):
    from app.web.app import create_app

    await prepare_databases(db_url, rbac_url)
    app = create_app(app_settings(db_url, rbac_url, tmp_path))
    async with AsyncTestClient(app=app) as client:
        r = await client.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
        r = await client.get("/login", follow_redirects=False)
        assert r.status_code == 401 and "rbac register" in r.json()["error"]["message"]


async def test_json_handlers_answer_401_not_a_redirect(auth_env):
    r = await auth_env.client.get("/me", follow_redirects=False)  # no JSON Accept, but /me answers JSON
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
