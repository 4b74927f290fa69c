"""The admission decides each call before it writes anything: no row of a committed transaction
is ever rolled back to a savepoint (on Galera without a binary log such a rollback is replicated
as if committed). Checked on MariaDB with the session's `Handler_savepoint_rollback` around a
batch of admitted calls, a twin, a full limit and a stale context (modules/pipeline_dist/procedures.py).
"""
from __future__ import annotations

import pytest
from dist_world import (
    admit,
    assert_counters_match_usage,
    clear_of_period_end,
    counters,
    dist_admin_fixture,  # noqa: F401 - the dist_admin fixture
    make_world,
    usage_rows,
)

from app.core.clock import utcnow
from app.core.ids import new_id
from modules.pipeline_dist.limits import limits_for
from modules.pipeline_dist.mariadb_store import ADMIT_STALE, ADMIT_TWIN, admit_member


async def _session_status(tx, name: str) -> int:
    cur = await tx._cursor()
    await cur.execute("SHOW SESSION STATUS LIKE %s", (name,))
    return int((await cur.fetchone())[1])


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
async def test_a_batch_with_refusals_and_twins_rolls_nothing_back(dist_admin):
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, dist={"daily_quota": 3}, capacity={"max_concurrency": 10})
    assert (await admit(w, "first")).status_code == 201  # the general case makes today's counters
    store, now = w.store, utcnow()
    async with store.transaction() as tx:
        ctx = await tx.context(w.distributor_id, w.code, "x", now)
    limits = limits_for(ctx, w.distributor_id, w.pipeline_id, dist_admin.ctx.settings.business_timezone, now)

    def member(request_id: str, version: int | None = ctx["version"]) -> dict:
        usage = {"id": new_id(), "pipeline_id": w.pipeline_id, "version_no": ctx["published_version"],
                 "distributor_id": w.distributor_id, "request_id": request_id, "units": 1, "unit_price": "0.02",
                 "amount": "0.02", "currency": "CNY", "price_mode": "unit", "lease_expires_at": now,
                 "client_ip": None}
        return admit_member(limits, usage, now, version)

    batch = [member("a"), member("a"), member("first"), member("b"), member("c"), member("d", ctx["version"] - 1)]
    async with store.transaction() as tx:
        before = await _session_status(tx, "Handler_savepoint_rollback")
        answers = await tx.admit_batch(batch)
        rolled_back = await _session_status(tx, "Handler_savepoint_rollback") - before
    n = len(limits)
    assert [a for a, _ in answers] == [n, ADMIT_TWIN, ADMIT_TWIN, n, answers[4][0], ADMIT_STALE]
    assert answers[4][0] not in (n, ADMIT_TWIN, ADMIT_STALE)  # the daily quota of 3 is full: undecided
    assert rolled_back == 0
    assert sorted(r["request_id"] for r in await usage_rows(w)) == ["a", "b", "first"]
    assert (await counters(w))[f"dist:{w.distributor_id}|C"] == 3
    await assert_counters_match_usage(w)


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
async def test_a_repeat_is_answered_even_when_its_limit_is_full_now(dist_admin):
    """The repeat's counters are full (its own call among them) and the worker's cached context
    does not know the call: deciding before writing must still find it, not refuse it."""
    await clear_of_period_end(dist_admin.ctx.settings)
    w = await make_world(dist_admin, dist={"max_concurrency": 2})
    first = await admit(w, "a")
    assert first.status_code == 201 and (await admit(w, "b")).status_code == 201
    again = await admit(w, "a")
    assert again.status_code == 200, again.text
    assert again.json()["call_id"] == first.json()["call_id"]
