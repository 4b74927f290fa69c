"""Login throttling under concurrency and from many addresses, on SQLite and MariaDB.

Each client below has its own client address (httpx's ASGI transport sets the scope's client),
so these are the situations of issue 13: a burst of wrong passwords at once, and strangers
failing from other addresses while the owner logs in from a new one.
"""
from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from app.auth.sessions import throttle_table
from app.auth.throttle import THROTTLE_FREE_FAILURES, charge_attempt, login_keys
from app.core.clock import utcnow
from app.core.db import make_engine
from conftest import prepare_databases
from helpers import ADMIN_PASSWORD, Operator, csrf_of
from conftest import every_database

pytestmark = every_database


def client_from(app, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://test")


async def try_login(client: httpx.AsyncClient, password: str) -> int:
    return (await Operator(client).login("admin", password)).status_code


@pytest.fixture
def held_clock(clock):
    """Every attempt at one instant: on a loaded machine a burst would otherwise outlast the
    first one-second wait, and a sixth attempt would rightly be checked."""
    clock.stop()
    return clock


async def test_a_burst_of_wrong_passwords_checks_only_the_free_handful(live_app, held_clock):
    app, _ = live_app
    async with client_from(app, "10.9.0.1") as client:
        statuses = await asyncio.gather(*(try_login(client, "wrong-Pass-1") for _ in range(60)))
    assert all(s in (400, 429) for s in statuses), statuses  # never a 5xx
    assert statuses.count(400) <= THROTTLE_FREE_FAILURES  # 400 = the password was checked
    assert statuses.count(429) >= 60 - THROTTLE_FREE_FAILURES


async def test_strangers_on_other_addresses_do_not_lock_the_owner_out(live_app, held_clock):
    app, _ = live_app
    for n in range(12):  # twelve strangers, one address each, two wrong guesses apiece
        async with client_from(app, f"10.8.0.{n + 1}") as stranger:
            for _ in range(2):
                assert await try_login(stranger, "wrong-Pass-1") == 400
    async with client_from(app, "10.7.0.1") as stranger:  # one persistent stranger gets throttled…
        codes = [await try_login(stranger, "wrong-Pass-1") for _ in range(THROTTLE_FREE_FAILURES + 1)]
    assert codes[-1] == 429
    async with client_from(app, "10.6.0.1") as owner:  # …but the owner from a new address gets in
        assert await try_login(owner, ADMIN_PASSWORD) == 303


async def test_concurrent_charges_from_two_workers_count_exactly(db_url, tmp_path):
    """Two engines (two workers) charge 200 attempts on the same keys at once: no error, and the
    attempts admitted are exactly the free handful."""
    await prepare_databases(db_url, db_url)
    engines = [make_engine(db_url), make_engine(db_url)]
    keys = login_keys("user-1", "10.5.0.1")
    try:
        now = utcnow()
        waits = await asyncio.gather(*(charge_attempt(engines[i % 2], keys, now) for i in range(200)))
        assert sum(1 for w in waits if w == 0) == THROTTLE_FREE_FAILURES
        t = throttle_table()
        async with engines[0].connect() as conn:
            counts = (await conn.execute(select(t.c.id, t.c.fail_count).where(t.c.id.in_(keys)))).all()
            assert {c.fail_count for c in counts} == {THROTTLE_FREE_FAILURES}
            assert (await conn.execute(select(func.count()).select_from(t))).scalar() == 2
    finally:
        for engine in engines:
            await engine.dispose()


async def test_login_rotates_the_csrf_token_and_https_gets_secure_cookies_and_hsts(live_app):
    app, _ = live_app
    transport = httpx.ASGITransport(app=app, client=("10.4.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        page = await client.get("/login")
        assert "max-age=" in page.headers["strict-transport-security"]
        assert all("Secure" in c for c in page.headers.get_list("set-cookie"))
        before = client.cookies.get("csrftoken")
        token = csrf_of(page.text)
        r = await client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "_csrf_token": token})
        assert r.status_code == 303
        assert client.cookies.get("csrftoken") not in (None, before)  # a new token from login on
    async with client_from(app, "10.4.0.2") as plain:
        page = await plain.get("/login")
        assert "strict-transport-security" not in page.headers
        assert not any("Secure" in c for c in page.headers.get_list("set-cookie"))
