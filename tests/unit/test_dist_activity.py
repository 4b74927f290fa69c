"""What the distributor API notes beside the calls, in-process on SQLite and MariaDB: each key's
last use (time, client IP) written in the background with no extra statement on the hot path,
and the refusal counters, equal to the 429s a burst received, shown to operators and to the
distributor (the world: `dist_world`)."""
from __future__ import annotations

import asyncio
import re
import secrets

import pytest
from dist_world import (
    API,
    admit,
    bearer,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    finish,
    make_world,
)
from sqlalchemy import event, select

from app.core.clock import business_day, utcnow
from conftest import every_database

pytestmark = every_database


async def row_of(w, table: str, row_id: str) -> dict:
    t = w.ctx.catalog.tables[table].table
    async with w.engine.connect() as conn:
        return dict((await conn.execute(select(t).where(t.c.id == row_id))).one()._mapping)


async def eventually(check, seconds: float = 15):
    """`check()` until it is truthy: the notes are written every few seconds, in the background."""
    for _ in range(int(seconds * 10)):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("not written in time")


@pytest.fixture
def statements(dist_admin, monkeypatch):
    """Every statement the app sends to its database, as text (SQLAlchemy on SQLite and PostgreSQL,
    aiomysql cursors on MariaDB, which both the raw store and SQLAlchemy use there)."""
    seen: list[str] = []
    ctx = dist_admin.ctx
    if ctx.db.dialect.name not in ("mysql", "mariadb"):
        def listener(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
            seen.append(statement)

        event.listen(ctx.db.sync_engine, "before_cursor_execute", listener)
        yield seen
        event.remove(ctx.db.sync_engine, "before_cursor_execute", listener)
        return
    import aiomysql.cursors

    real = aiomysql.cursors.Cursor.execute

    async def counted(self, query, args=None):  # noqa: ANN001
        seen.append(query if isinstance(query, str) else str(query))
        return await real(self, query, args)

    monkeypatch.setattr(aiomysql.cursors.Cursor, "execute", counted)
    yield seen


async def per_admission(w, seen: list[str], n: int = 6) -> list[int]:
    """Statements each of `n` admit+finish pairs sent (the key is cached after the first)."""
    out = []
    for _ in range(n):
        before = len(seen)
        r = await admit(w)
        assert r.status_code == 201, r.text
        assert (await finish(w, r.json()["call_id"])).status_code == 200
        out.append(len(seen) - before)
    return out


async def test_last_used_is_noted_off_the_hot_path(dist_admin, statements):
    w = await make_world(dist_admin)
    activity = w.ctx.extras["dist"].activity
    activity.interval = 3600.0  # the test decides when the notes are written (below: the real timer)
    w.ctx.extras["dist"].keys.ttl = 60  # a cached key, as in production: the check costs no query
    assert (await row_of(w, "distributors", w.distributor_id))["key_last_used_at"] is None
    statements.clear()  # what the operator's setup sent (generate_key writes the row) is not the hot path
    noted = await per_admission(w, statements)
    assert not any(re.search(r"update\s+distributors", s, re.I) for s in statements), "a write on the hot path"
    assert activity.uses, "the use is noted in memory"
    noted_counts = noted[1:]  # the first admission also read the key
    real = type(activity).key_used
    type(activity).key_used = lambda self, *a: None  # the same calls with nothing noted at all
    try:
        plain = (await per_admission(w, statements))[1:]
    finally:
        type(activity).key_used = real
    assert noted_counts == plain, (noted_counts, plain)  # noting costs no round trip

    activity.interval = 0.2
    row = await eventually(lambda: _used(w))
    assert row["key_last_used_ip"] == "testclient"
    assert business_day("UTC", row["key_last_used_at"]) == business_day("UTC", utcnow())
    writes = [s for s in statements if re.search(r"update\s+distributors", s, re.I)]
    assert 1 <= len(writes) <= 2, writes  # one executemany per flush, however many calls
    page = await w.admin.client.get(f"/pipeline_dist/distributors/{w.distributor_id}")
    assert "testclient" in page.text and "dist-keys" in page.text


async def _used(w) -> dict | None:
    row = await row_of(w, "distributors", w.distributor_id)
    return row if row["key_last_used_at"] is not None else None


async def test_rotation_keeps_the_old_key_last_use(dist_admin):
    w = await make_world(dist_admin)
    w.ctx.extras["dist"].activity.interval = 0.2
    assert (await admit(w)).status_code == 201
    await eventually(lambda: _used(w))
    r = await w.admin.api("POST", f"/api/pipeline_dist/distributors/{w.distributor_id}/rotate_key",
                          json={"grace_hours": 2})
    assert r.status_code == 200, r.text
    row = await row_of(w, "distributors", w.distributor_id)
    assert row["key_last_used_at"] is None and row["prev_key_last_used_at"] is not None
    new = r.json()["api_key"]
    assert (await admit(w, key=new)).status_code == 201
    row = await eventually(lambda: _used(w))
    assert row["key_last_used_at"] >= row["prev_key_last_used_at"]


async def test_refusal_counters_equal_the_429s_of_a_burst(dist_admin):
    w = await make_world(dist_admin, link_fields={"daily_quota": 3}, code="burst")
    activity = w.ctx.extras["dist"].activity
    activity.interval = 0.2
    answers = await asyncio.gather(*[admit(w, f"b-{i}-{secrets.token_hex(3)}") for i in range(12)])
    statuses = [r.status_code for r in answers]
    refused = statuses.count(429)
    assert statuses.count(201) == 3 and refused == 9, statuses
    assert all(r.json()["error"]["limit"] == "link.daily" for r in answers if r.status_code == 429)
    assert (await admit(w, code="no-such-pipeline")).status_code == 404

    t = w.ctx.catalog.tables["dist_rejections"].table

    async def counted() -> dict | None:
        async with w.engine.connect() as conn:
            rows = (await conn.execute(select(t).where(t.c.distributor_id == w.distributor_id))).all()
        by = {(r.pipeline_id, r.reason): r.refusals for r in rows}
        return by if sum(by.values()) == refused + 1 else None

    by = await eventually(counted)
    assert by == {(w.pipeline_id, "link.daily"): refused, (None, "not_found"): 1}  # one row each, not per call
    usage = (await w.client.get(f"{API}/usage", headers=bearer(w.key))).json()
    assert {(x["pipeline"], x["reason"]): x["refused"] for x in usage["rejections"]} == {
        ("burst", "link.daily"): refused, (None, "not_found"): 1}
    for page in (f"/pipeline_dist/distributors/{w.distributor_id}", f"/pipeline_core/pipelines/{w.pipeline_id}"):
        text = (await w.admin.client.get(page)).text
        assert f"<code>link.daily</code> {refused}<" in text, page
    report = (await w.admin.client.get("/pipeline_ops/usage_daily", params={"distributor_id": w.distributor_id})).text
    assert re.search(rf'<td class="t-int">3</td>\s*<td class="t-int">3</td><td class="t-decimal">[\d.]+</td>'
                     rf'<td class="t-int">{refused}</td>', report), report[-3000:]
