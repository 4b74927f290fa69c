"""Issue 19, point 3: each worker reads a session's row once per `session_cache_seconds`, not on
every request. A session ended or a role revoked in the database (another worker, plain SQL)
is refused on the first request after that many seconds; a logout on this worker is refused at
once. On SQLite and MariaDB, RBAC in a database of its own (`auth_env`), time moved by the
test clock instead of slept."""
from __future__ import annotations

from conftest import AUTH_USERS
from helpers import Operator
from sqlalchemy import delete, event, select

from app.auth import rbac
from app.auth.sessions import sessions_table
from app.core.config import load_settings

ADMIN_PW = AUTH_USERS["admin"][0]


def _queries(engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: seen.append(statement))
    return seen


async def test_a_session_ended_in_the_database_is_refused_within_the_cache_seconds(auth_env, clock):
    clock.stop()
    wait = auth_env.ctx.settings.session_cache_seconds
    await auth_env.op.login("admin", ADMIN_PW)
    assert (await auth_env.op.me()).status_code == 200
    app_queries = _queries(auth_env.ctx.db)
    assert (await auth_env.op.me()).status_code == 200
    assert app_queries == []  # the session came from this worker's cache
    s = sessions_table()
    async with auth_env.app_db.begin() as conn:  # another worker's logout, or plain SQL
        await conn.execute(delete(s))
    clock.advance(seconds=wait - 0.5)
    assert (await auth_env.op.me()).status_code == 200  # still within the cache seconds
    clock.advance(seconds=0.5)
    assert (await auth_env.op.me()).status_code == 401
    r = await auth_env.client.get("/pipeline_core/pipelines", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_a_role_revoked_in_the_database_is_refused_within_the_cache_seconds(auth_env, clock):
    clock.stop()
    settings = auth_env.ctx.settings
    await auth_env.op.login("admin", ADMIN_PW)
    assert (await auth_env.client.get("/pipeline_core/pipelines")).status_code == 200
    u, ur = rbac.table("users"), rbac.table("userrole")
    async with auth_env.rbac_db.begin() as conn:
        admin_id = (await conn.execute(select(u.c.id).where(u.c.username == "admin"))).scalar_one()
        await conn.execute(delete(ur).where(ur.c.userid == admin_id))
    clock.advance(seconds=max(settings.session_cache_seconds, settings.rbac_cache_seconds))
    assert (await auth_env.client.get("/pipeline_core/pipelines")).status_code == 403
    assert (await auth_env.op.me()).status_code == 200  # still logged in, only the grant is gone


async def test_logout_on_this_worker_is_immediate(auth_env, clock):
    clock.stop()
    await auth_env.op.login("admin", ADMIN_PW)
    assert (await auth_env.op.me()).status_code == 200  # cached now
    token = auth_env.client.cookies["pa_session"]
    assert (await auth_env.op.logout()).status_code == 303
    async with auth_env.other_client(cookies={"pa_session": token}) as replay:
        assert (await Operator(replay).me()).status_code == 401
    # a new login replaces the session it came with: the old token is refused at once too
    await auth_env.op.login("admin", ADMIN_PW)
    first = auth_env.client.cookies["pa_session"]
    assert (await auth_env.op.me()).status_code == 200
    await auth_env.op.login("admin", ADMIN_PW)
    async with auth_env.other_client(cookies={"pa_session": first}) as replay:
        assert (await Operator(replay).me()).status_code == 401


async def test_zero_seconds_reads_the_session_on_every_request(auth_env):
    auth_env.ctx.settings.session_cache_seconds = 0
    await auth_env.op.login("admin", ADMIN_PW)
    assert (await auth_env.op.me()).status_code == 200
    async with auth_env.app_db.begin() as conn:
        await conn.execute(delete(sessions_table()))
    assert (await auth_env.op.me()).status_code == 401


def test_the_setting_reads_its_environment_variable(monkeypatch):
    assert load_settings().session_cache_seconds == 3
    monkeypatch.setenv("PIPELINE_SESSION_CACHE_SECONDS", "0.5")
    assert load_settings().session_cache_seconds == 0.5
