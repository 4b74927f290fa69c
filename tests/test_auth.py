"""Login, server-side sessions, CSRF, throttling and path authorization (app.web.auth, app.auth.sessions).

Every database test runs on SQLite and on MariaDB, with the app database and the RBAC database
as two different databases.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re

import pytest
from conftest import app_settings, make_database, prepare_databases
from litestar import get
from litestar.testing import AsyncTestClient
from sqlalchemy import event, func, insert, select, update

from app.auth import rbac
from app.auth.sessions import sessions_table, throttle_table
from app.auth.throttle import login_keys, throttle_delay
from app.core.clock import utcnow
from app.core.db import make_engine
from app.auth.principal import Principal
from app.web.auth import safe_next

ADMIN_PW = "admin-Pass-1"
VIEWER_PW = "viewer-Pass-1"
WRONG = "not-the-password"
BAD_LOGIN = "用户名或密码错误"


@pytest.fixture
def rbac_url(db_url, tmp_path):
    """A second, separate database of the same kind as `db_url` for the RBAC tables."""
    kind = "sqlite" if db_url.startswith("sqlite") else "mariadb"
    url, drop = make_database(kind, tmp_path)
    yield url
    drop()


@pytest.fixture
async def env(db_url, rbac_url, tmp_path):
    """The real app on two fresh databases, every path registered, three users:
    admin (pipeline.admin), viewer (pipeline.viewer: may only view pipeline records) and
    gone (disabled)."""
    from app.web.app import create_app

    rbac.invalidate()
    await prepare_databases(db_url, rbac_url)
    settings = app_settings(db_url, rbac_url, tmp_path)
    settings = dataclasses.replace(settings, rbac_defaults={
        **settings.rbac_defaults, "pipeline.viewer": ["/pipeline_core/pipelines/{id}"]})
    app = create_app(settings)
    engine = make_engine(rbac_url)
    await rbac.register_paths(engine, rbac.app_paths(app), settings.rbac_defaults, dry_run=False)
    await rbac.add_user(engine, "admin", ADMIN_PW, "pipeline.admin")
    await rbac.add_user(engine, "viewer", VIEWER_PW, "pipeline.viewer")
    gone_id, _ = await rbac.add_user(engine, "gone", "gone-Pass-1", "pipeline.admin")
    async with engine.begin() as conn:
        await conn.execute(update(rbac.table("users")).where(rbac.table("users").c.id == gone_id)
                           .values(user_status="1"))
    await engine.dispose()
    app_db, rbac_db = make_engine(db_url), make_engine(rbac_url)
    async with AsyncTestClient(app=app) as client:
        yield Env(app, client, app.state.ctx, app_db, rbac_db)
    await app_db.dispose()
    await rbac_db.dispose()
    rbac.invalidate()


@dataclasses.dataclass
class Env:
    app: object
    client: AsyncTestClient
    ctx: object   # the app's own context (its engines live on the app's event loop)
    app_db: object  # engines for the test's own checks
    rbac_db: object

    def other_client(self, **kwargs) -> AsyncTestClient:
        """A second browser on the same app (same worker, same databases)."""
        return AsyncTestClient(app=self.app, **kwargs)

    async def scalar(self, engine, stmt):
        async with engine.connect() as conn:
            return (await conn.execute(stmt)).scalar()


def csrf_of(html: str) -> str:
    m = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert m, "the form carries no CSRF token"
    return m.group(1)


async def login(client, username: str, password: str, next_: str | None = None):
    page = await client.get("/login")
    data = {"username": username, "password": password, "_csrf_token": csrf_of(page.text)}
    if next_ is not None:
        data["next"] = next_
    return await client.post("/login", data=data, follow_redirects=False)


async def logout(client):
    return await client.post("/logout", data={"_csrf_token": client.cookies.get("csrftoken", "")},
                             follow_redirects=False)


async def me(client):
    return await client.get("/me", headers={"accept": "application/json"})


def set_cookie_header(response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(name + "="))


# ---------------------------------------------------------------- pure functions

@pytest.mark.parametrize("grant, path, expected", [
    ("/login", "/login", True),
    ("/login", "/login/", True),
    ("/login", "/logins", False),
    ("/login", "/login/x", False),
    ("/", "/", True),
    ("/", "/x", False),
    ("/pipeline_core/**", "/pipeline_core/pipelines/abc/edit", True),
    ("/pipeline_core/**", "/pipeline_core", True),
    ("/pipeline_core/**", "/pipeline_core/", True),
    ("/pipeline_core/**", "/pipeline_corex", False),
    ("/pipeline_core/**", "/pipeline_corex/y", False),
    ("/pipeline_core/**", "/api/pipeline_core/pipelines", False),
    ("/pipeline_core/%", "/pipeline_core/pipelines", True),
    ("/pipeline_core%", "/pipeline_core/pipelines", True),
    ("/pipeline_core%", "/pipeline_corex", False),
    ("/**", "/anything/at/all", True),
    ("/t/{id}", "/t/abc", True),
    ("/t/{id}", "/t", False),
    ("/t/{id}", "/t/abc/edit", False),
    ("/t/{id}/edit", "/t/abc/edit", True),
    ("/t/{id}/edit", "/t/abc/delete", False),
    ("/t/{id}/edit", "/t//edit", False),
    ("/t/{id}/**", "/t/abc/edit", True),
    ("/t/abc", "/t/abd", False),
    ("", "/", False),
    ("login", "/login", False),
])
def test_path_matching(grant, path, expected):
    assert rbac.path_matches(grant, path) is expected
    assert Principal("u", "u", frozenset(), (grant,)).allows(path) is expected


@pytest.mark.parametrize("grant, path, template, expected", [
    ("/t/{id}", "/t/abc", "/t/{id}", True),
    ("/t/{id}", "/t/new", "/t/new", False),   # a record grant does not open the create page
    ("/t/new", "/t/new", "/t/new", True),
    ("/t/abc", "/t/abc", "/t/{id}", True),     # a grant for one record
    ("/t/**", "/t/new", "/t/new", True),
])
def test_path_matching_with_route_template(grant, path, template, expected):
    assert rbac.path_matches(grant, path, template) is expected


def test_default_deny_without_grants():
    nobody = Principal(None, None, frozenset({"any", "anonymous"}), ())
    assert not nobody.allows("/") and not nobody.allows("/login") and nobody.is_anonymous


@pytest.mark.parametrize("value, expected", [
    ("/pipeline_core/pipelines?page=2", "/pipeline_core/pipelines?page=2"),
    ("/", "/"), ("", "/"), (None, "/"), ("//evil.example/x", "/"), ("/\\evil.example", "/"),
    ("https://evil.example/", "/"), ("javascript:alert(1)", "/"), ("pipeline_core", "/"), ("/a\nb", "/"),
])
def test_safe_next(value, expected):
    assert safe_next(value) == expected


@pytest.mark.parametrize("failures, seconds", [
    (0, 0), (4, 0), (5, 1), (6, 2), (7, 4), (14, 512), (15, 900), (1000, 900),
])
def test_throttle_delay_doubles_to_a_cap(failures, seconds):
    assert throttle_delay(failures) == seconds


# ---------------------------------------------------------------- login and sessions

async def test_login_page_is_chinese_by_default_with_csrf_and_next(env):
    r = await env.client.get("/login?next=/pipeline_core/pipelines")
    assert r.status_code == 200
    assert "用户名" in r.text and "密码" in r.text and csrf_of(r.text)
    assert 'name="next" value="/pipeline_core/pipelines"' in r.text
    env.client.cookies.set("lang", "en")
    r = await env.client.get("/login?next=https://evil.example/")
    assert "Username" in r.text and 'name="next" value="/"' in r.text


async def test_login_success_redirects_and_sets_a_safe_cookie(env):
    r = await login(env.client, "admin", ADMIN_PW, next_="/pipeline_core/pipelines")
    assert r.status_code == 303 and r.headers["location"] == "/pipeline_core/pipelines"
    cookie = set_cookie_header(r, "pa_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie and "secure" not in cookie
    r = await me(env.client)
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "admin"
    assert set(body["roles"]) == {"any", "logined", "pipeline.admin"}
    assert "password" not in r.text and "$argon2" not in r.text
    assert (await env.client.get("/pipeline_core/pipelines")).status_code == 200
    u = rbac.table("users")
    row_stmt = select(u.c.last_login, u.c.login_fail_count).where(u.c.username == "admin")
    async with env.rbac_db.connect() as conn:
        row = (await conn.execute(row_stmt)).one()
    assert row.last_login is not None and row.login_fail_count == 0


async def test_external_next_goes_home(env):
    r = await login(env.client, "admin", ADMIN_PW, next_="//evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_cookie_is_secure_over_https(env):
    async with env.other_client(base_url="https://testserver.local") as client:
        r = await login(client, "admin", ADMIN_PW)
        assert r.status_code == 303
        assert "secure" in set_cookie_header(r, "pa_session").lower()


async def test_same_message_for_unknown_user_and_wrong_password(env):
    unknown = await login(env.client, "nobody-here", WRONG)
    wrong = await login(env.client, "admin", WRONG)
    assert unknown.status_code == wrong.status_code == 400
    msg = re.compile(r'<p class="flash error" role="alert">(.*?)</p>')
    assert msg.search(unknown.text).group(1) == msg.search(wrong.text).group(1)
    assert BAD_LOGIN in wrong.text and csrf_of(wrong.text)
    assert "pa_session" not in env.client.cookies
    u = rbac.table("users")
    count = await env.scalar(env.rbac_db, select(u.c.login_fail_count).where(u.c.username == "admin"))
    assert count == 1
    assert await env.scalar(env.rbac_db, select(u.c.last_login_fail).where(u.c.username == "admin"))


async def test_disabled_user_cannot_log_in(env):
    r = await login(env.client, "gone", "gone-Pass-1")
    assert r.status_code == 400 and BAD_LOGIN in r.text


async def test_session_id_changes_at_login_and_the_token_is_not_stored(env):
    first = await login(env.client, "admin", ADMIN_PW)
    token1 = env.client.cookies["pa_session"]
    second = await login(env.client, "admin", ADMIN_PW)
    token2 = env.client.cookies["pa_session"]
    assert first.status_code == second.status_code == 303 and token1 != token2
    s = sessions_table()
    async with env.app_db.connect() as conn:
        ids = set((await conn.execute(select(s.c.id))).scalars())
    assert ids == {hashlib.sha256(token2.encode()).hexdigest()}  # the old one is gone, no raw token
    async with env.other_client(cookies={"pa_session": token1}) as stale:
        assert (await me(stale)).status_code == 401
    assert (await me(env.client)).status_code == 200


async def test_logout_ends_the_session_on_the_server(env):
    await login(env.client, "admin", ADMIN_PW)
    token = env.client.cookies["pa_session"]
    r = await logout(env.client)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert 'pa_session=""' in set_cookie_header(r, "pa_session") or "max-age=0" in \
        set_cookie_header(r, "pa_session").lower()
    s = sessions_table()
    assert await env.scalar(env.app_db, select(func.count()).select_from(s)) == 0
    async with env.other_client(cookies={"pa_session": token}) as replay:  # the old cookie, replayed
        assert (await me(replay)).status_code == 401
        r = await replay.get("/pipeline_core/pipelines", follow_redirects=False)
        assert r.status_code == 303


async def test_expired_session_is_anonymous(env):
    await login(env.client, "admin", ADMIN_PW)
    s = sessions_table()
    async with env.app_db.begin() as conn:
        await conn.execute(update(s).values(expires_at=utcnow().replace(year=2000)))
    assert (await me(env.client)).status_code == 401


async def test_post_without_csrf_token_is_refused(env):
    await env.client.get("/login")
    r = await env.client.post("/login", data={"username": "admin", "password": ADMIN_PW},
                              follow_redirects=False)
    assert r.status_code == 403 and "pa_session" not in env.client.cookies
    await login(env.client, "admin", ADMIN_PW)
    r = await env.client.post("/logout", data={}, follow_redirects=False)
    assert r.status_code == 403
    assert (await me(env.client)).status_code == 200  # still logged in
    r = await env.client.post("/logout", data={"_csrf_token": "0" * 64}, follow_redirects=False)
    assert r.status_code == 403


# ---------------------------------------------------------------- throttling

async def test_throttle_after_five_failures_then_wait_then_success_resets(env):
    for _ in range(5):
        assert (await login(env.client, "admin", WRONG)).status_code == 400
    u = rbac.table("users")
    assert await env.scalar(env.rbac_db, select(u.c.login_fail_count).where(u.c.username == "admin")) == 5
    blocked = await login(env.client, "admin", ADMIN_PW)  # right password, but refused unchecked
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert "秒后重试" in blocked.text and "pa_session" not in env.client.cookies
    t = throttle_table()
    async with env.app_db.connect() as conn:
        until = (await conn.execute(select(func.max(t.c.locked_until)))).scalar()
    await asyncio.sleep(max(0.0, (until - utcnow()).total_seconds()) + 0.2)
    ok = await login(env.client, "admin", ADMIN_PW)
    assert ok.status_code == 303
    assert await env.scalar(env.app_db, select(func.count()).select_from(t)) == 0  # user and IP keys reset
    assert await env.scalar(env.rbac_db, select(u.c.login_fail_count).where(u.c.username == "admin")) == 0
    assert (await login(env.client, "admin", WRONG)).status_code == 400  # counting starts again


async def test_throttle_per_ip_catches_spraying_usernames(env):
    for n in range(5):
        assert (await login(env.client, f"user{n}", WRONG)).status_code == 400
    r = await login(env.client, "admin", ADMIN_PW)
    assert r.status_code == 429
    r = await login(env.client, "admin", ADMIN_PW)  # still waiting: refused, not counted further
    assert r.status_code == 429
    t = throttle_table()
    assert await env.scalar(env.app_db, select(t.c.fail_count).where(t.c.id == "ip:testclient")) == 5


async def test_waits_double_and_a_success_is_possible_after_the_cap(env):
    t = throttle_table()
    now = utcnow()
    users = rbac.table("users")
    admin_id = await env.scalar(env.rbac_db, select(users.c.id).where(users.c.username == "admin"))
    key = next(k for k in login_keys(admin_id, "testclient") if k.startswith("u:"))
    async with env.app_db.begin() as conn:  # 40 failures for this user from this address already
        await conn.execute(insert(t).values(id=key, fail_count=40, last_fail=now, locked_until=now))
    await login(env.client, "admin", WRONG)
    async with env.app_db.connect() as conn:
        row = (await conn.execute(select(t.c.fail_count, t.c.locked_until).where(t.c.id == key))).one()
    assert row.fail_count == 41
    assert 899 <= (row.locked_until - now).total_seconds() <= 902  # capped at 15 minutes


# ---------------------------------------------------------------- authorization

async def test_anonymous_is_sent_to_login_or_gets_401(env):
    r = await env.client.get("/pipeline_core/pipelines?page=2", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=/pipeline_core/pipelines")
    r = await env.client.get("/api/pipeline_core/pipelines")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await env.client.get("/pipeline_core/pipelines", headers={"accept": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["status"] == 401
    assert (await me(env.client)).status_code == 401
    for public in ("/", "/login", "/healthz", "/static/app.css"):
        assert (await env.client.get(public, follow_redirects=False)).status_code == 200, public


async def test_logged_in_without_grant_gets_403(env):
    await login(env.client, "viewer", VIEWER_PW)
    page = await env.client.get("/pipeline_core/pipelines")
    assert page.status_code == 403 and "无权访问" in page.text
    assert 'name="_csrf_token"' in page.text  # the logout form on the denied page still works
    api = await env.client.get("/api/pipeline_core/pipelines")
    assert api.status_code == 403 and api.json()["error"]["code"] == "forbidden"
    # a grant of `/pipeline_core/pipelines/{id}` opens a record, not the create page
    assert (await env.client.get("/pipeline_core/pipelines/new")).status_code == 403
    assert (await env.client.get("/pipeline_core/pipelines/0123456789abcdef")).status_code not in (401, 403)


async def test_unregistered_path_is_refused_to_everyone(env):
    @get("/forgotten/page", sync_to_thread=False)
    def forgotten() -> str:
        return "secret"

    env.app.register(forgotten)
    assert (await env.client.get("/forgotten/page", follow_redirects=False)).status_code == 303
    r = await env.client.get("/forgotten/page", headers={"accept": "application/json"})
    assert r.status_code == 401
    await login(env.client, "admin", ADMIN_PW)
    r = await env.client.get("/forgotten/page")
    assert r.status_code == 403 and "secret" not in r.text


async def test_grants_are_cached_and_invalidate_drops_the_cache(env):
    env.ctx.settings.rbac_cache_seconds = 60
    await login(env.client, "viewer", VIEWER_PW)
    assert (await env.client.get("/pipeline_core/pipelines")).status_code == 403
    engine = env.rbac_db
    await rbac.register_paths(engine, [], {"pipeline.viewer": ["/pipeline_core/pipelines"]}, dry_run=False)
    assert (await env.client.get("/pipeline_core/pipelines")).status_code == 200  # register invalidates
    rp, p = rbac.table("rolepermission"), rbac.table("permission")
    perm = await env.scalar(engine, select(p.c.id).where(p.c.path == "/pipeline_core/pipelines"))
    async with engine.begin() as conn:  # revoked behind the app's back: cached for a while
        await conn.execute(rp.delete().where(rp.c.permid == perm))
    assert (await env.client.get("/pipeline_core/pipelines")).status_code == 200
    rbac.invalidate()
    assert (await env.client.get("/pipeline_core/pipelines")).status_code == 403


def _count_queries(engine, counter: list) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        counter.append(statement)


async def test_few_queries_per_request(env):
    app_q, rbac_q = [], []
    _count_queries(env.ctx.db, app_q)
    _count_queries(env.ctx.rbac_db, rbac_q)
    await env.client.get("/healthz")
    app_q.clear(), rbac_q.clear()
    await env.client.get("/healthz")
    await env.client.get("/static/app.css")
    assert app_q == [] and rbac_q == []  # anonymous, warm cache: no query at all
    await login(env.client, "admin", ADMIN_PW)
    await env.client.get("/me")
    app_q.clear(), rbac_q.clear()
    await env.client.get("/me")
    assert len(app_q) == 1 and rbac_q == []  # the session row; user, roles and grants cached
    app_q.clear()
    await env.client.get("/healthz")
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


async def test_json_handlers_answer_401_not_a_redirect(env):
    r = await env.client.get("/me", follow_redirects=False)  # no JSON Accept, but /me answers JSON
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
