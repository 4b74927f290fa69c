"""Issue 13, point 4, on SQLite and MariaDB: a new password (from the CLI or the admin page) and a
disabled account end the user's sessions on every worker, not only the one that made the change
(each worker here is an app of its own on the same databases); the CSRF token a browser held
before a login or a logout is worth nothing after it."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from litestar.testing import AsyncTestClient
from rbac_world import ADMIN_PW, world, world_settings  # noqa: F401 - fixtures

from app.core.config import ROOT
from helpers import Operator, csrf_of

PW, NEW_PW = "carol-Passw0rd-1", "carol-Passw0rd-2"


async def logged_in(settings, name: str, password: str) -> Operator:
    """A browser on a worker of its own (an app with its own engines and event loop), logged in."""
    from app.web.app import create_app

    client = AsyncTestClient(app=create_app(settings))
    await client.__aenter__()
    op = Operator(client)
    assert (await op.login(name, password)).status_code == 303
    return op


async def status_of(op: Operator) -> int:
    return (await op.me()).status_code


async def close(*ops: Operator) -> None:
    for op in ops:
        await op.client.__aexit__(None, None, None)


async def test_reset_and_disable_on_one_worker_end_sessions_on_the_others(world):
    carol_id = await world.user("carol", PW, "ops.viewer")
    on_b, on_c = await logged_in(world.settings, "carol", PW), await logged_in(world.settings, "carol", PW)
    try:
        admin = await world.as_user("admin", ADMIN_PW)
        r = await admin.form(f"/rbac/users/{carol_id}/password", {"password": NEW_PW, "password2": NEW_PW})
        assert r.status_code == 303
        assert [await status_of(on_b), await status_of(on_c)] == [401, 401]
        assert (await on_b.login("carol", NEW_PW)).status_code == 303
        r = await admin.form(f"/rbac/users/{carol_id}/status", {"status": "disabled"})
        assert r.status_code == 303
        assert await status_of(on_b) == 401
        assert (await on_c.login("carol", NEW_PW)).status_code == 400
    finally:
        await close(on_b, on_c)


async def test_a_new_password_from_the_cli_ends_every_session(world, tmp_path):
    await world.user("carol", PW, "ops.viewer")
    ops = [await logged_in(world.settings, "carol", PW), await logged_in(world.settings, "carol", PW)]
    env = {**os.environ, "SAGE_RBAC_DB": world.rbac_url, "PIPELINE_DB": world.app_url,
           "PIPELINE_DATA": str(tmp_path / "cli"), "PIPELINE_KEY_SECRET": "test-secret"}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "app.cli.main", "rbac", "adduser", "carol", "--password-stdin",
                         "--role", "ops.viewer"], cwd=ROOT, env=env, input=NEW_PW + "\n", capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 0 and "updated (new password)" in done.stdout, done.stdout + done.stderr
    try:
        assert [await status_of(op) for op in ops] == [401, 401]
        assert (await ops[0].login("carol", NEW_PW)).status_code == 303
    finally:
        await close(*ops)


async def test_the_csrf_token_is_new_after_login_and_after_logout(world):
    client = world.client
    client.cookies.clear()
    op = Operator(client)
    before_login = csrf_of((await client.get("/login")).text)
    assert (await op.login("admin", ADMIN_PW)).status_code == 303
    logged_in_token = op.csrf
    assert logged_in_token and logged_in_token != before_login
    # a token seen (or planted) before the login is refused on a write after it
    r = await client.post("/rbac/roles", data={"key": "qa.planted", "_csrf_token": before_login},
                          follow_redirects=False)
    assert r.status_code == 403
    assert (await op.form("/rbac/roles", {"key": "qa.fresh"})).status_code == 303
    assert (await op.logout()).status_code == 303
    after_logout = op.csrf
    assert after_logout and after_logout != logged_in_token
    # the logged-in page's token does not log the next person in
    r = await client.post("/login", data={"username": "admin", "password": ADMIN_PW,
                                          "_csrf_token": logged_in_token}, follow_redirects=False)
    assert r.status_code == 403 and (await op.me()).status_code == 401
