"""Daily usage totals in the business time zone: a small chart on the pipeline's and the
distributor's page, and a report page of totals per day, distributor and pipeline.

Days are cut in `settings.business_timezone` and turned into naive-UTC bounds, so every query is
an index range on (pipeline_id | distributor_id, started_at) and works the same in every dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from litestar import Request
from litestar.response import Template
from sqlalchemy import and_, case, func, select

from app.core.clock import business_day, clamp_day, day_bounds, utcnow
from app.core.context import ctx_of
from app.web.render import render
from app.web.ui import lang_of

MAX_DAYS = 62
COUNTED = ("running", "succeeded", "failed", "expired")


@dataclass
class Day:
    day: date
    start: datetime
    end: datetime


def days_back(tz_name: str, days: int, today: date | None = None) -> list[Day]:
    """The last `days` business days, oldest first, with their naive-UTC bounds."""
    today = today or business_day(tz_name, utcnow())
    return days_between(tz_name, today - timedelta(days=days - 1), today)


def days_between(tz_name: str, first: date, last: date) -> list[Day]:
    days = [first + timedelta(i) for i in range((last - first).days + 1)]
    return [Day(d, *day_bounds(tz_name, d)) for d in days]


async def daily_totals(request: Request, field: str, value: str, days: list[Day]) -> list[tuple[Day, int, Decimal]]:
    """Calls and amount per day for one pipeline or distributor, in ONE query (a CASE per day)."""
    t = ctx_of(request).catalog.tables["pipeline_usage_log"].table
    cols = []
    for i, d in enumerate(days):
        inside = and_(t.c.started_at >= d.start, t.c.started_at < d.end)
        cols += [
            func.sum(case((inside, 1), else_=0)).label(f"n{i}"),
            func.sum(case((inside, t.c.amount), else_=0)).label(f"a{i}"),
        ]
    stmt = select(*cols).where(
        t.c[field] == value, t.c.started_at >= days[0].start, t.c.started_at < days[-1].end, t.c.status.in_(COUNTED)
    )
    async with ctx_of(request).db.connect() as conn:
        row = (await conn.execute(stmt)).one()._mapping
    return [(d, int(row[f"n{i}"] or 0), Decimal(row[f"a{i}"] or 0)) for i, d in enumerate(days)]


def svg_bars(points: list[tuple[str, int]], width: int = 620, height: int = 120) -> str:
    """A bar chart as plain SVG markup (no script, no inline CSS: the CSP stays strict)."""
    top = max((v for _, v in points), default=0) or 1
    bar = width / max(len(points), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 18}" width="{width}" height="{height + 18}" '
        f'role="img" aria-label="{escape(points[0][0])} – {escape(points[-1][0])}">'
    ]
    for i, (label, value) in enumerate(points):
        h = round(value / top * height, 1)
        x = round(i * bar + 1, 1)
        parts.append(
            f'<rect x="{x}" y="{height - h}" width="{max(bar - 2, 1):.1f}" height="{h}" fill="#2458c6">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
    for i in (0, len(points) - 1):
        anchor = "start" if i == 0 else "end"
        x = 0 if i == 0 else width
        parts.append(
            f'<text x="{x}" y="{height + 14}" font-size="11" text-anchor="{anchor}" fill="#5b6474">'
            f"{escape(points[i][0])}</text>"
        )
    parts.append(f'<text x="{width}" y="11" font-size="11" text-anchor="end" fill="#5b6474">max {top}</text></svg>')
    return "".join(parts)


async def chart_block(request: Request, field: str, value: str, days: int = 30) -> str:
    ctx = ctx_of(request)
    lang = lang_of(request)
    totals = await daily_totals(request, field, value, days_back(ctx.settings.business_timezone, days))
    calls = sum(n for _, n, _ in totals)
    amount = sum((a for _, _, a in totals), Decimal(0))
    title = "Calls per day, last 30 days" if lang == "en" else "近 30 天每日调用"
    link = f"/pipeline_ops/usage_daily?{field}={escape(value)}"
    more = "Daily report" if lang == "en" else "每日报表"
    return (
        f'<section class="panel usage-chart"><h2>{title} <small>({calls}, {amount.quantize(Decimal("0.01"))})'
        f"</small></h2>{svg_bars([(d.day.isoformat(), n) for d, n, _ in totals])}"
        f'<p><a href="{link}">{more}</a></p></section>'
    )


async def pipeline_chart(request: Request, tv: Any, row: dict[str, Any]) -> str:
    return await chart_block(request, "pipeline_id", row["id"])


async def distributor_chart(request: Request, tv: Any, row: dict[str, Any]) -> str:
    return await chart_block(request, "distributor_id", row["id"])


def _parse_day(text: str | None, default: date) -> date:
    try:
        return clamp_day(date.fromisoformat(text)) if text else default
    except ValueError:
        return default


async def usage_daily(request: Request) -> Template:
    """Totals per business day × distributor × pipeline, filterable, at most 62 days at once
    (a page of the `pages` hook: module.json gives its path)."""
    ctx = ctx_of(request)
    today = business_day(ctx.settings.business_timezone, utcnow())
    last = _parse_day(request.query_params.get("to"), today)
    first = _parse_day(request.query_params.get("from"), last - timedelta(days=13))
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    if first > last:
        first = last
    filters = {k: request.query_params.get(k, "")[:32] for k in ("distributor_id", "pipeline_id")}
    t = ctx.catalog.tables["pipeline_usage_log"].table
    rows = []
    async with ctx.db.connect() as conn:
        for d in reversed(days_between(ctx.settings.business_timezone, first, last)):
            stmt = (
                select(
                    t.c.distributor_id,
                    t.c.pipeline_id,
                    func.count().label("calls"),
                    func.sum(t.c.units).label("units"),
                    func.sum(t.c.amount).label("amount"),
                )
                .where(
                    t.c.started_at >= d.start,
                    t.c.started_at < d.end,
                    t.c.status.in_(COUNTED),
                    *[t.c[k] == v for k, v in filters.items() if v],
                )
                .group_by(t.c.distributor_id, t.c.pipeline_id)
            )
            rows += [(d.day, r) for r in (await conn.execute(stmt)).all()]
        names = {}
        for table, key in (("distributors", "distributor_id"), ("pipelines", "pipeline_id")):
            ids = {getattr(r, key) for _, r in rows if getattr(r, key)}
            if ids:
                tt = ctx.catalog.tables[table].table
                names.update(
                    {i: n for i, n in (await conn.execute(select(tt.c.id, tt.c.name).where(tt.c.id.in_(ids))))}
                )
    return render(
        request,
        "usage_daily.html",
        rows=rows,
        names=names,
        first=first,
        last=last,
        filters=filters,
        timezone=ctx.settings.business_timezone,
    )

