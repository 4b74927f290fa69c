"""`pipeline-app demo` fills an empty database so every page has something to show, and refuses
a database that already holds a catalog (issue 17)."""
from __future__ import annotations

import pytest

from app.cli.demo import fill_demo
from app.core.context import AppContext


async def test_the_demo_fills_every_page_and_never_a_full_database(admin):
    ctx = AppContext(admin.ctx.settings, admin.ctx.catalog)
    await ctx.start()
    try:
        done = await fill_demo(ctx, days=7)
        with pytest.raises(SystemExit, match="already holds pipelines"):
            await fill_demo(ctx)
    finally:
        await ctx.stop()
    assert done["pipelines"] == 4 and done["distributors"] == 2 and done["calls"] > 50
    for path in ("/api/pipeline_core/pipelines", "/api/pipeline_core/pipeline_steps",
                 "/api/pipeline_ops/pipeline_pricing",
                 "/api/pipeline_ops/pipeline_capacity", "/api/pipeline_dist/distributors",
                 "/api/pipeline_dist/distributor_pipeline", "/api/pipeline_ops/pipeline_usage_log",
                 "/api/pipeline_core/pipeline_versions"):
        r = await admin.api("GET", path)
        assert r.status_code == 200 and r.json()["rows"], path
    steps = (await admin.api("GET", "/api/pipeline_core/pipeline_steps?rows=100")).json()["rows"]
    assert any(s["parallel_group"] for s in steps) and any(not s["parallel_group"] for s in steps)
    modes = {p["price_mode"] for p in (await admin.api("GET", "/api/pipeline_ops/pipeline_pricing")).json()["rows"]}
    assert modes == {"unit", "package"}
    daily = await admin.api("GET", "/pipeline_ops/usage_daily")
    assert daily.status_code == 200 and ("product-copy" in daily.text or "商品文案" in daily.text)
    key = next(iter(done["keys"].values()))
    r = await admin.client.get("/api/dist/v1/pipelines", headers={"authorization": "Bearer " + key})
    assert r.status_code == 200 and len(r.json()) == 3
