"""Issue 13, point 3, the cases test_login_throttle.py leaves out, on SQLite and MariaDB: names
the database folds into one user, a burst of 200, where the throttle's state lives on a shared
RBAC database, and a password typed into the username box."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect, select
from test_login_throttle import client_from, held_clock  # noqa: F401 - the fixture
from test_rbac_ecosystem import shared  # noqa: F401 - the fixture

from app.auth import rbac
from app.auth.sessions import throttle_table
from app.auth.throttle import THROTTLE_FREE_FAILURES, throttle_key
from app.core.db import make_engine
from helpers import Operator, query

LOOKALIKES = ["ADMIN", "ádmin", "ＡＤＭＩＮ", "admin\u200b", "admin\u200b\u200b", "admin\x00", "Admin "]


async def throttle_rows(url: str) -> dict[str, int]:
    t = throttle_table()
    return {row.id: row.fail_count for row in (await query(url, select(t.c.id, t.c.fail_count))).all()}


async def test_names_the_database_folds_together_charge_the_one_user(live_app, held_clock, db_url):  # noqa: F811
    """Each spelling is judged by the user the RBAC database resolves it to: on MariaDB
    (utf8mb4_unicode_ci) `ＡＤＭＩＮ` and `ádmin` are admin, so they charge admin's key, not one
    key per spelling; SQLite compares bytes and they are unknown users. Never a 5xx."""
    app, _ = live_app
    engine = make_engine(db_url)
    try:
        admin_id = (await rbac.login_record(engine, "admin")).user_id
        resolved = [n for n in LOOKALIKES if (r := await rbac.login_record(engine, n)) and r.user_id == admin_id]
    finally:
        await engine.dispose()
    if db_url.startswith("mysql"):
        assert resolved == LOOKALIKES  # every one of them is admin there
    for n, name in enumerate(LOOKALIKES):
        async with client_from(app, f"10.3.0.{n + 1}") as client:
            r = await Operator(client).login(name, "wrong-Pass-1")
            assert r.status_code == 400, (name, r.status_code)
    user_keys = {k: v for k, v in (await throttle_rows(db_url)).items() if k.startswith("u:")}
    assert set(user_keys) == {throttle_key("u", f"{admin_id}@10.3.0.{LOOKALIKES.index(n) + 1}") for n in resolved}

    # from one address, every spelling counts against the same handful
    async with client_from(app, "10.3.1.1") as client:
        codes = [(await Operator(client).login(name, "wrong-Pass-1")).status_code for name in LOOKALIKES * 2]
        assert all(c in (400, 429) for c in codes), codes
        assert codes.count(400) == THROTTLE_FREE_FAILURES
        assert (await Operator(client).login("admin", "wrong-Pass-1")).status_code == 429


@pytest.mark.parametrize("burst", [60, 200])
async def test_a_burst_of_wrong_passwords_for_one_user_checks_the_handful(live_app, held_clock, burst):  # noqa: F811
    app, _ = live_app
    async with client_from(app, "10.2.0.1") as client:
        statuses = await asyncio.gather(*(Operator(client).login("admin", f"wrong-{i}") for i in range(burst)))
    codes = [r.status_code for r in statuses]
    assert all(c in (400, 429) for c in codes), sorted(set(codes))
    assert codes.count(400) <= THROTTLE_FREE_FAILURES


async def test_on_a_shared_database_the_throttle_lives_in_the_app_database(shared, held_clock):  # noqa: F811
    """Under the ecosystem scheme our failures are counted in the app database only: the shared
    `login_fail_count` that locks the account on every app is never touched by this app."""
    from litestar.testing import AsyncTestClient

    from app.web.app import create_app

    settings, _ = shared
    u = rbac.table("users")
    shared_columns = select(u.c.login_fail_count, u.c.last_login_fail).where(u.c.id == "u-alice")
    before = tuple((await query(settings.rbac_database, shared_columns)).one())
    async with AsyncTestClient(app=create_app(settings)) as client:
        codes = [(await Operator(client).login("alice", "wrong-Pass-1")).status_code for _ in range(8)]
    assert codes.count(400) == THROTTLE_FREE_FAILURES and codes[-1] == 429
    assert (await throttle_rows(settings.database))  # the app's table holds the count
    engine = make_engine(settings.rbac_database)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert throttle_table().name not in tables
    # (the ecosystem's DDL stamps timestamps with the insert time: unchanged is what counts)
    assert tuple((await query(settings.rbac_database, shared_columns)).one()) == before
    assert before[0] == 0


async def test_a_password_typed_as_the_username_is_never_logged(live_app, tmp_path):
    app, _ = live_app
    typed = "Hunter2-typed-in-the-name-box"
    async with client_from(app, "10.1.0.1") as client:
        assert (await Operator(client).login(typed, "x")).status_code == 400
        assert (await Operator(client).login(typed + "\x00", typed)).status_code == 400
    settings = app.state.ctx.settings
    logs = "".join(p.read_text() for p in (settings.data_dir / "logs").glob("*.log"))
    assert "login failed" in logs and "(unknown user)" in logs
    assert typed not in logs and "Hunter2" not in logs

