"""Login, server-side sessions, CSRF and throttling (app.web.auth, app.auth.sessions).

Every test runs on SQLite and on MariaDB, with the app database and the RBAC database as two
different databases (the `auth_env` fixture).
"""
from __future__ import annotations

import hashlib
import re

from conftest import AUTH_USERS
from helpers import Operator, csrf_of
from sqlalchemy import func, insert, select, update

from app.auth import rbac
from app.auth.sessions import sessions_table, throttle_table
from app.auth.throttle import login_keys
from app.core.clock import utcnow

ADMIN_PW = AUTH_USERS["admin"][0]
WRONG = "not-the-password"
BAD_LOGIN = "用户名或密码错误"


def set_cookie_header(response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(name + "="))


# ---------------------------------------------------------------- login and sessions

async def test_login_page_is_chinese_by_default_with_csrf_and_next(auth_env):
    r = await auth_env.client.get("/login?next=/pipeline_core/pipelines")
    assert r.status_code == 200
    assert "用户名" in r.text and "密码" in r.text and csrf_of(r.text)
    assert 'name="next" value="/pipeline_core/pipelines"' in r.text
    auth_env.client.cookies.set("lang", "en")
    r = await auth_env.client.get("/login?next=https://evil.example/")
    assert "Username" in r.text and 'name="next" value="/"' in r.text


async def test_login_success_redirects_and_sets_a_safe_cookie(auth_env):
    r = await auth_env.op.login("admin", ADMIN_PW, next_="/pipeline_core/pipelines")
    assert r.status_code == 303 and r.headers["location"] == "/pipeline_core/pipelines"
    cookie = set_cookie_header(r, "pa_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie and "secure" not in cookie
    r = await auth_env.op.me()
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "admin"
    # the built-in roles, the user's role and the ecosystem's wildcard forms of it
    assert set(body["roles"]) == {"any", "logined", "pipeline.admin", "pipeline.*", "*.admin"}
    assert "password" not in r.text and "$argon2" not in r.text
    assert (await auth_env.client.get("/pipeline_core/pipelines")).status_code == 200
    u = rbac.table("users")
    row_stmt = select(u.c.last_login, u.c.login_fail_count).where(u.c.username == "admin")
    async with auth_env.rbac_db.connect() as conn:
        row = (await conn.execute(row_stmt)).one()
    assert row.last_login is not None and row.login_fail_count == 0


async def test_external_next_goes_home(auth_env):
    r = await auth_env.op.login("admin", ADMIN_PW, next_="//evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_cookie_is_secure_over_https(auth_env):
    async with auth_env.other_client(base_url="https://testserver.local") as client:
        r = await Operator(client).login("admin", ADMIN_PW)
        assert r.status_code == 303
        assert "secure" in set_cookie_header(r, "pa_session").lower()


async def test_same_message_for_unknown_user_and_wrong_password(auth_env):
    unknown = await auth_env.op.login("nobody-here", WRONG)
    wrong = await auth_env.op.login("admin", WRONG)
    assert unknown.status_code == wrong.status_code == 400
    msg = re.compile(r'<p class="flash error" role="alert">(.*?)</p>')
    assert msg.search(unknown.text).group(1) == msg.search(wrong.text).group(1)
    assert BAD_LOGIN in wrong.text and csrf_of(wrong.text)
    assert "pa_session" not in auth_env.client.cookies
    u = rbac.table("users")
    count = await auth_env.scalar(auth_env.rbac_db, select(u.c.login_fail_count).where(u.c.username == "admin"))
    assert count == 1
    assert await auth_env.scalar(auth_env.rbac_db, select(u.c.last_login_fail).where(u.c.username == "admin"))


async def test_disabled_user_cannot_log_in(auth_env):
    r = await auth_env.op.login("gone", AUTH_USERS["gone"][0])
    assert r.status_code == 400 and BAD_LOGIN in r.text


async def test_session_id_changes_at_login_and_the_token_is_not_stored(auth_env):
    first = await auth_env.op.login("admin", ADMIN_PW)
    token1 = auth_env.client.cookies["pa_session"]
    second = await auth_env.op.login("admin", ADMIN_PW)
    token2 = auth_env.client.cookies["pa_session"]
    assert first.status_code == second.status_code == 303 and token1 != token2
    s = sessions_table()
    async with auth_env.app_db.connect() as conn:
        ids = set((await conn.execute(select(s.c.id))).scalars())
    assert ids == {hashlib.sha256(token2.encode()).hexdigest()}  # the old one is gone, no raw token
    async with auth_env.other_client(cookies={"pa_session": token1}) as stale:
        assert (await Operator(stale).me()).status_code == 401
    assert (await auth_env.op.me()).status_code == 200


async def test_logout_ends_the_session_on_the_server(auth_env):
    await auth_env.op.login("admin", ADMIN_PW)
    token = auth_env.client.cookies["pa_session"]
    r = await auth_env.op.logout()
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert 'pa_session=""' in set_cookie_header(r, "pa_session") or "max-age=0" in \
        set_cookie_header(r, "pa_session").lower()
    s = sessions_table()
    assert await auth_env.scalar(auth_env.app_db, select(func.count()).select_from(s)) == 0
    async with auth_env.other_client(cookies={"pa_session": token}) as replay:  # the old cookie, replayed
        assert (await Operator(replay).me()).status_code == 401
        r = await replay.get("/pipeline_core/pipelines", follow_redirects=False)
        assert r.status_code == 303


async def test_expired_session_is_anonymous(auth_env):
    await auth_env.op.login("admin", ADMIN_PW)
    s = sessions_table()
    async with auth_env.app_db.begin() as conn:
        await conn.execute(update(s).values(expires_at=utcnow().replace(year=2000)))
    assert (await auth_env.op.me()).status_code == 401


async def test_post_without_csrf_token_is_refused(auth_env):
    await auth_env.client.get("/login")
    r = await auth_env.client.post("/login", data={"username": "admin", "password": ADMIN_PW},
                              follow_redirects=False)
    assert r.status_code == 403 and "pa_session" not in auth_env.client.cookies
    await auth_env.op.login("admin", ADMIN_PW)
    r = await auth_env.client.post("/logout", data={}, follow_redirects=False)
    assert r.status_code == 403
    assert (await auth_env.op.me()).status_code == 200  # still logged in
    r = await auth_env.client.post("/logout", data={"_csrf_token": "0" * 64}, follow_redirects=False)
    assert r.status_code == 403


# ---------------------------------------------------------------- throttling

async def test_throttle_after_five_failures_then_wait_then_success_resets(auth_env, clock):
    clock.stop()  # the 1 s wait must not run out between the failures and the refused try
    for _ in range(5):
        assert (await auth_env.op.login("admin", WRONG)).status_code == 400
    u = rbac.table("users")
    assert await auth_env.scalar(auth_env.rbac_db, select(u.c.login_fail_count).where(u.c.username == "admin")) == 5
    blocked = await auth_env.op.login("admin", ADMIN_PW)  # right password, but refused unchecked
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert "秒后重试" in blocked.text and "pa_session" not in auth_env.client.cookies
    t = throttle_table()
    async with auth_env.app_db.connect() as conn:
        until = (await conn.execute(select(func.max(t.c.locked_until)))).scalar()
    clock.advance(seconds=(until - utcnow()).total_seconds() + 1)  # past the wait, without sleeping
    ok = await auth_env.op.login("admin", ADMIN_PW)
    assert ok.status_code == 303
    assert await auth_env.scalar(auth_env.app_db, select(func.count()).select_from(t)) == 0  # user and IP keys reset
    assert await auth_env.scalar(auth_env.rbac_db, select(u.c.login_fail_count).where(u.c.username == "admin")) == 0
    assert (await auth_env.op.login("admin", WRONG)).status_code == 400  # counting starts again


async def test_throttle_per_ip_catches_spraying_usernames(auth_env, clock):
    clock.stop()  # the two refused tries come within the 1 s wait, however busy the machine
    for n in range(5):
        assert (await auth_env.op.login(f"user{n}", WRONG)).status_code == 400
    r = await auth_env.op.login("admin", ADMIN_PW)
    assert r.status_code == 429
    r = await auth_env.op.login("admin", ADMIN_PW)  # still waiting: refused, not counted further
    assert r.status_code == 429
    t = throttle_table()
    assert await auth_env.scalar(auth_env.app_db, select(t.c.fail_count).where(t.c.id == "ip:testclient")) == 5


async def test_waits_double_and_a_success_is_possible_after_the_cap(auth_env):
    t = throttle_table()
    now = utcnow()
    users = rbac.table("users")
    admin_id = await auth_env.scalar(auth_env.rbac_db, select(users.c.id).where(users.c.username == "admin"))
    key = next(k for k in login_keys(admin_id, "testclient") if k.startswith("u:"))
    async with auth_env.app_db.begin() as conn:  # 40 failures for this user from this address already
        await conn.execute(insert(t).values(id=key, fail_count=40, last_fail=now, locked_until=now))
    await auth_env.op.login("admin", WRONG)
    async with auth_env.app_db.connect() as conn:
        row = (await conn.execute(select(t.c.fail_count, t.c.locked_until).where(t.c.id == key))).one()
    assert row.fail_count == 41
    assert 899 <= (row.locked_until - now).total_seconds() <= 902  # capped at 15 minutes
