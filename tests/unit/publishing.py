"""What the publish tests share: pipelines and prices written straight to the database (with the
shapes publishing checks), and the rows read back."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from app.core.clock import utcnow
from app.core.context import AppContext
from app.core.db import make_engine
from app.core.ids import new_id
from app.crud.rows import Actor

ACTOR = Actor("u-publisher", "publisher", "127.0.0.1")
STAMPS = ("created_at", "updated_at")


def on_own_engine(ctx: AppContext, url: str) -> AppContext:
    """`ctx` with an engine of its own on `url`: another connection, or the app's database seen
    from the test's event loop."""
    return AppContext(ctx.settings, ctx.catalog, db=make_engine(url))


def T(ctx, name):  # noqa: N802 - short accessor for a table
    return ctx.catalog.tables[name].table


async def make_pipeline(ctx, steps: list[dict], status: str = "active", price: bool = True) -> str:
    """A pipeline with `steps` (seq, name, and anything else) and, by default, a pipeline-wide price
    for any model, effective since yesterday."""
    pid, now = new_id(), utcnow()
    async with ctx.db.begin() as conn:
        await conn.execute(insert(T(ctx, "pipelines")).values(
            id=pid, code=f"p{pid[-8:]}", name=f"Pipeline {pid[-8:]}", status=status, owner="u1",
            created_at=now, updated_at=now, created_by="u1"))
        for s in steps:
            await conn.execute(insert(T(ctx, "pipeline_steps")).values(**{
                "id": new_id(), "pipeline_id": pid, "step_type": "model", "timeout_s": 60, "retries": 0,
                "created_at": now, "updated_at": now, **s}))
        if price:
            await add_price(ctx, pid, conn=conn)
    return pid


async def add_price(ctx, pid: str, conn=None, **over) -> None:
    values = {"id": new_id(), "pipeline_id": pid, "step_id": None, "model": None, "billing_unit": "call",
              "price_mode": "unit", "unit_price": "0.010000", "currency": "CNY", "status": "active",
              "effective_from": utcnow() - timedelta(days=1), "effective_to": None, **over}
    if conn is not None:
        await conn.execute(insert(T(ctx, "pipeline_pricing")).values(**values))
    else:
        async with ctx.db.begin() as c:
            await c.execute(insert(T(ctx, "pipeline_pricing")).values(**values))


async def rows(ctx, table: str, **where) -> list[dict]:
    t = T(ctx, table)
    async with ctx.db.connect() as conn:
        result = await conn.execute(select(t).where(*[t.c[k] == v for k, v in where.items()]))
        return [dict(r._mapping) for r in result]


async def steps_of(ctx, pid: str) -> list[dict]:
    return sorted(await rows(ctx, "pipeline_steps", pipeline_id=pid), key=lambda s: s["id"])


def without_stamps(steps: list[dict]) -> list[dict]:
    return [{k: v for k, v in s.items() if k not in STAMPS} for s in steps]


TWO_STEPS = [{"seq": 1, "name": "ocr", "model": "ocr-v1", "config": '{"lang": "zh"}'},
             {"seq": 2, "name": "sum", "model": "llm-x", "config": None}]
