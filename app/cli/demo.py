"""`pipeline-app demo`: a small believable catalog, so a newcomer sees every page working.

Everything but the usage history goes through the same runtime an operator uses (the CRUD
store with its rules, publishing, key issuing), so the demo is also a smoke test of it. It never
runs against a database that already holds pipelines.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select

from app.core.catalog import load_catalog
from app.core.clock import utcnow
from app.core.config import load_settings
from app.core.context import AppContext
from app.core.ids import new_id
from app.crud.rows import Actor
from app.crud.store import create_row
from modules.pipeline_core.publish import publish
from modules.pipeline_dist.keys import issue_key

ACTOR = Actor(None, "demo", None)
# code, name, steps (name, type, model, parallel group), price (mode, unit price, package units, package price)
Step = tuple[str, str, str | None, str | None]
Price = tuple[str, str | None, int | None, str | None]
CATALOG: list[tuple[str, str, list[Step], Price]] = [
    ("doc-ocr", "票据识别 Invoice OCR", [("切分 Split", "transform", None, None), ("识别 OCR", "model", "ocr-v3", None),
                                      ("校验 Check", "review", None, None)], ("unit", "0.0200", None, None)),
    ("product-copy", "商品文案 Product copy", [("要点 Key points", "model", "llm-small", None),
                                          ("中文 Chinese", "model", "llm-large", "write"),
                                          ("英文 English", "model", "llm-large", "write"),
                                          ("合规 Compliance", "review", None, None)], ("unit", "0.0500", None, None)),
    ("voice-notes", "语音纪要 Voice notes", [("转写 Transcribe", "model", "asr-v2", None),
                                        ("摘要 Summary", "model", "llm-small", None)],
     ("package", None, 1800, "30.0000")),
    ("image-check", "图片审核 Image check", [("取图 Fetch", "http", None, None),
                                         ("审核 Moderate", "model", "vision-s", "scan"),
                                         ("水印 Watermark", "model", "vision-w", "scan")],
     ("unit", "0.0080", None, None)),
]
DISTRIBUTORS = [("华东渠道 East China Channel", 5000, 20), ("Northwind Partners", 2000, 10)]


async def _count(ctx: AppContext, table: str) -> int:
    t = ctx.catalog.tables[table].table
    async with ctx.db.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(t))).scalar()


async def _pipeline(ctx: AppContext, code: str, name: str, steps: list, price: tuple) -> dict[str, Any]:
    tables = ctx.catalog.tables
    row = await create_row(ctx, tables["pipelines"], {"code": code, "name": name, "status": "active",
                                                      "description": f"Demo pipeline {code}"}, ACTOR, strict=True)
    for seq, (step, kind, model, group) in enumerate(steps, 1):
        await create_row(ctx, tables["pipeline_steps"], {
            "pipeline_id": row["id"], "seq": seq, "name": step, "step_type": kind, "model": model,
            "parallel_group": group, "config": json.dumps({"demo": True}), "timeout_s": 60, "retries": 1},
            ACTOR, strict=True)
    mode, unit, units, package = price
    await create_row(ctx, tables["pipeline_pricing"], {
        "pipeline_id": row["id"], "billing_unit": "call", "price_mode": mode, "unit_price": unit,
        "package_units": units, "package_price": package, "currency": "CNY",
        "effective_from": (utcnow() - timedelta(days=60)).isoformat(), "status": "active"}, ACTOR, strict=True)
    await create_row(ctx, tables["pipeline_capacity"], {
        "pipeline_id": row["id"], "daily_quota": 10000, "monthly_quota": 200000, "max_concurrency": 50,
        "status": "active"}, ACTOR, strict=True)
    await publish(ctx, row["id"], ACTOR, note="demo")
    return {**row, "price": price}


def _amount(price: tuple, units: int) -> tuple[Decimal | None, Decimal]:
    mode, unit, package_units, package_price = price
    if mode == "unit":
        return Decimal(unit), Decimal(unit) * units
    per_unit = Decimal(package_price) / package_units
    return None, (per_unit * units).quantize(Decimal("0.000001"))


async def _usage(ctx: AppContext, links: list[tuple[str, dict]], days: int, rng: random.Random) -> int:
    """A few weeks of finished calls: history, written directly (nothing is admitted in the past)."""
    t = ctx.catalog.tables["pipeline_usage_log"].table
    rows, now = [], utcnow()
    for distributor_id, pipeline in links:
        for day in range(days, 0, -1):
            for _ in range(rng.randint(3, 12)):
                started = now - timedelta(days=day, seconds=rng.randint(0, 86000))
                units = rng.choice((1, 1, 1, 5, 20)) if pipeline["price"][0] == "unit" else rng.randint(60, 600)
                ok = rng.random() > 0.06
                unit_price, amount = _amount(pipeline["price"], units)
                rows.append({"id": new_id(), "pipeline_id": pipeline["id"], "version_no": 1,
                             "distributor_id": distributor_id, "request_id": new_id(), "units": units,
                             "unit_price": unit_price, "amount": amount if ok else Decimal(0), "currency": "CNY",
                             "status": "succeeded" if ok else "failed", "started_at": started,
                             "finished_at": started + timedelta(milliseconds=rng.randint(300, 9000)),
                             "latency_ms": rng.randint(300, 9000), "created_at": started, "updated_at": started,
                             "error": None if ok else "upstream timeout"})
    async with ctx.db.begin() as conn:
        await conn.execute(insert(t), rows)
    return len(rows)


async def fill_demo(ctx: AppContext, days: int = 21, seed: int = 7) -> dict[str, Any]:
    """Pipelines with serial and parallel steps, prices of both modes, capacities, two
    distributors with keys and their offers, and `days` of usage. Refuses a database with pipelines."""
    if await _count(ctx, "pipelines"):
        raise SystemExit("pipeline-app demo: the database already holds pipelines; the demo fills only an empty one")
    rng = random.Random(seed)
    pipelines = [await _pipeline(ctx, *entry) for entry in CATALOG]
    tables, keys, links = ctx.catalog.tables, {}, []
    for name, daily, concurrency in DISTRIBUTORS:
        d = await create_row(ctx, tables["distributors"], {"name": name, "status": "active", "daily_quota": daily,
                                                           "max_concurrency": concurrency}, ACTOR, strict=True)
        keys[name], _row = await issue_key(ctx, ACTOR, d["id"])
        for pipeline in pipelines[: 3 if daily > 2000 else 2]:
            await create_row(ctx, tables["distributor_pipeline"], {
                "distributor_id": d["id"], "pipeline_id": pipeline["id"], "enabled": "1"}, ACTOR, strict=True)
            links.append((d["id"], pipeline))
    calls = await _usage(ctx, links, days, rng)
    return {"pipelines": len(pipelines), "distributors": len(keys), "calls": calls, "keys": keys}


def _demo(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def run() -> dict[str, Any]:
        ctx = AppContext(settings, load_catalog(settings.build_dir))
        await ctx.start()
        try:
            return await fill_demo(ctx, days=args.days)
        finally:
            await ctx.stop()

    done = asyncio.run(run())
    print(f"demo: {done['pipelines']} pipelines, {done['distributors']} distributors, {done['calls']} calls")
    for name, key in done["keys"].items():
        print(f"demo key of {name}: {key}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="fill an empty app database with a small demo catalog")
    d.add_argument("--days", type=int, default=21, help="days of usage history (default 21)")
    d.set_defaults(func=_demo)
