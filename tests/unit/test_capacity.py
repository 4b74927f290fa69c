"""Quotas: never negative, and a monthly quota below the daily one is refused on monthly_quota.

Through the JSON API and the form, on SQLite and MariaDB, for pipeline capacity, distributors
and distributor-pipeline links.
"""
from __future__ import annotations

import pytest
from helpers import seed


@pytest.fixture
async def op(admin):
    await seed(admin.ctx, pipelines=[{"id": "P1", "code": "p1", "name": "P1", "status": "active"},
                                     {"id": "P2", "code": "p2", "name": "P2", "status": "active"}],
               distributors=[{"id": "D1", "name": "d1", "status": "active"}])
    return admin


TARGETS = [
    ("/api/pipeline_ops/pipeline_capacity", {"pipeline_id": "P1"}),
    ("/api/pipeline_dist/distributors", {"name": "d2"}),
    ("/api/pipeline_dist/distributor_pipeline", {"distributor_id": "D1", "pipeline_id": "P1"}),
]


@pytest.mark.parametrize("path,base", TARGETS, ids=["capacity", "distributor", "link"])
async def test_monthly_below_daily_refused(op, path, base):
    r = await op.api("POST", path, json={**base, "daily_quota": 100, "monthly_quota": 99})
    assert r.status_code == 422, r.text
    assert set(r.json()["error"]["fields"]) == {"monthly_quota"}
    r = await op.api("POST", path, json={**base, "daily_quota": 100, "monthly_quota": 100})
    assert r.status_code == 201, r.text
    row_id = r.json()["id"]
    # An update is checked against the row as it will be: raising daily above the stored monthly.
    r = await op.api("PATCH", f"{path}/{row_id}", json={"daily_quota": 101})
    assert r.status_code == 422 and "monthly_quota" in r.json()["error"]["fields"], r.text
    r = await op.api("PATCH", f"{path}/{row_id}", json={"monthly_quota": None, "daily_quota": 101})
    assert r.status_code == 200, r.text  # no monthly limit: nothing to compare


@pytest.mark.parametrize("path,base", TARGETS, ids=["capacity", "distributor", "link"])
@pytest.mark.parametrize("field", ["daily_quota", "monthly_quota"])
async def test_negative_quota_refused(op, path, base, field):
    r = await op.api("POST", path, json={**base, field: -1})
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"]


async def test_negative_concurrency_refused(op):
    r = await op.api("POST", "/api/pipeline_ops/pipeline_capacity", json={"pipeline_id": "P2", "max_concurrency": -1})
    assert r.status_code == 422 and "max_concurrency" in r.json()["error"]["fields"]


async def test_monthly_below_daily_refused_in_form(op):
    r = await op.form("/pipeline_ops/pipeline_capacity/new", {"pipeline_id": "P1", "daily_quota": "50",
                                                               "monthly_quota": "10", "max_concurrency": "",
                                                               "status": "active"})
    assert r.status_code == 422
    assert "不能小于每日限额（50）" in r.text
    r = await op.api("GET", "/api/pipeline_ops/pipeline_capacity")
    assert r.json()["total"] == 0
