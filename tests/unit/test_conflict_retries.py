"""Conflicts are absorbed on the write paths: a CRUD write that a real deadlock picks as its victim
is run again whole and succeeds (its audit rows written once); a conflict that never clears is a
503 `busy` with Retry-After in the one error shape; /metrics counts retries and give-ups by path."""
from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from app.core import retry
from app.core.clock import utcnow
from app.core.db import async_url
from app.core.ids import new_id
from app.crud import store
from app.crud.rows import Actor
from app.crud.store import change_row, create_row, write_transaction

ACTOR = Actor("u-test", "tester", "127.0.0.1")


def counted(metric, path: str) -> float:
    return metric.labels(path)._value.get()


@pytest.mark.parametrize("db_url", ["mariadb", "postgresql"], indirect=True)
async def test_a_deadlocked_crud_write_is_retried_and_succeeds(ctx):
    """The CRUD transaction locks A then wants B; a rival holds B and then wants A: a deadlock, and
    the CRUD transaction is its victim (MariaDB sacrifices the lighter transaction: the rival
    first writes many rows; PostgreSQL the one whose deadlock check runs first: the rival waits
    10 s before checking). The whole CRUD transaction runs again and succeeds. (Distributors, not
    pipelines: a pipeline's contains-search triggers also lock its neighbours' grams, so there the
    CRUD write waits for the rival's commit before it could take A, and no deadlock forms.)"""
    tv = ctx.catalog.tables["distributors"]
    t, audit = tv.table, ctx.catalog.tables["audit_log"].table
    a = await create_row(ctx, tv, {"name": "A"}, ACTOR, strict=False)
    b = await create_row(ctx, tv, {"name": "B"}, ACTOR, strict=False)
    rival_has_b, crud_has_a = asyncio.Event(), asyncio.Event()
    attempts = 0
    # the rival is a plain engine: the app's own would also bump the shared table_versions row
    other = create_async_engine(async_url(ctx.settings.database))

    async def rival() -> None:
        async with other.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SET LOCAL deadlock_timeout = '10s'"))
            else:
                weight = [{"id": new_id(), "action": "weight", "table_name": "x", "created_at": utcnow()}
                          for _ in range(300)]
                await conn.execute(insert(audit), weight)
            await conn.execute(update(t).where(t.c.id == b["id"]).values(name="rival B"))
            rival_has_b.set()
            await crud_has_a.wait()
            await asyncio.sleep(0.3)  # the CRUD transaction is waiting for B by now
            await conn.execute(update(t).where(t.c.id == a["id"]).values(name="rival A"))
            await conn.execute(text("DELETE FROM audit_log WHERE action = 'weight'"))

    async def work(conn) -> None:
        nonlocal attempts
        attempts += 1
        await change_row(ctx, conn, tv, a["id"], {"name": "crud A"}, ACTOR, strict=False)
        crud_has_a.set()
        await change_row(ctx, conn, tv, b["id"], {"name": "crud B"}, ACTOR, strict=False)

    async def crud() -> None:
        await rival_has_b.wait()
        await write_transaction(ctx, work)

    retries = counted(retry.RETRIES, "crud")
    try:
        await asyncio.wait_for(asyncio.gather(rival(), crud()), 60)
    finally:
        await other.dispose()
    assert attempts >= 2 and counted(retry.RETRIES, "crud") >= retries + 1
    async with ctx.db.connect() as conn:
        names = dict((await conn.execute(select(t.c.id, t.c.name).where(t.c.id.in_([a["id"], b["id"]])))).all())
        audited = (await conn.execute(select(func.count()).select_from(audit).where(
            audit.c.action == "update", audit.c.table_name == "distributors"))).scalar()
    assert names == {a["id"]: "crud A", b["id"]: "crud B"}  # the CRUD write won in the end, whole
    assert audited == 2  # one audit row per changed row: the rolled-back attempt left none


def _deadlock() -> OperationalError:
    import pymysql

    return OperationalError("UPDATE …", {}, pymysql.err.OperationalError(1213, "Deadlock found when trying to lock"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_conflict_that_never_clears_is_503_busy_and_counted(admin, monkeypatch):
    monkeypatch.setattr(retry, "WRITE_BUDGET", 0.3)

    async def always_conflicts(*args, **kwargs):
        raise _deadlock()

    monkeypatch.setattr(store, "audit", always_conflicts)
    retries, give_ups = counted(retry.RETRIES, "crud"), counted(retry.GIVE_UPS, "crud")
    r = await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "busy", "name": "Busy"})
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "busy" and "Traceback" not in r.text
    assert counted(retry.GIVE_UPS, "crud") == give_ups + 1 and counted(retry.RETRIES, "crud") > retries
    monkeypatch.undo()
    listed = (await admin.api("GET", "/api/pipeline_core/pipelines")).json()["rows"]
    assert [row for row in listed if row["code"] == "busy"] == []  # nothing of the attempts stayed

    metrics = (await admin.client.get("/metrics")).text
    for path in ("admission", "finish", "crud", "session", "throttle", "rbac"):
        assert re.search(rf'pipeline_db_conflict_retries_total{{path="{path}"}} \d', metrics), path
        assert re.search(rf'pipeline_db_conflict_give_ups_total{{path="{path}"}} \d', metrics), path
    got = re.search(r'pipeline_db_conflict_give_ups_total{path="crud"} ([\d.]+)', metrics)
    assert float(got.group(1)) >= 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_session_write_that_loses_once_is_run_again(admin, monkeypatch):
    """Logging in writes a session; a conflict at its first attempt is retried, the login works."""
    from app.auth import sessions

    real, calls = sessions.in_transaction, []

    async def flaky(engine, work, *, path, budget=None):
        async def first_fails(conn):
            calls.append(path)
            if len(calls) == 1:
                raise _deadlock()
            return await work(conn)

        return await real(engine, first_fails, path=path, budget=budget)

    monkeypatch.setattr(sessions, "in_transaction", flaky)
    retries = counted(retry.RETRIES, "session")
    from conftest import ADMIN_PASSWORD, Operator

    op = Operator(admin.client)
    assert (await op.login("admin", ADMIN_PASSWORD)).status_code == 303
    assert calls[:2] == ["session", "session"] and counted(retry.RETRIES, "session") == retries + 1
    assert (await admin.client.get("/me")).status_code == 200
