"""Daily usage totals in the business time zone: a small chart on the pipeline's and the
distributor's page (with the refused calls), and a report page of totals per day, distributor,
pipeline and currency, with the refused calls, its filters shown, CSV/xlsx export, and each row
opening its usage rows.

Days are cut in `settings.business_timezone` and turned into naive-UTC bounds, so every query is
an index range on (pipeline_id | distributor_id, started_at) and works the same in every dialect.
Refusals come from the distributor API's counters (`dist_rejections`, one row per distributor,
pipeline, reason and day), read by table name: this module does not import the distributor one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from urllib.parse import urlencode

from litestar import Request, Response
from litestar.response import Template
from sqlalchemy import and_, case, func, literal, select

from app.core.i18n import Msg, gettext
from app.core.clock import business_day, clamp_day, day_bounds, utcnow
from app.crud.rows import jsonable
from app.core.context import ctx_of
from app.web.formatting import local_time, money
from app.web.render import render
from app.web.ui import lang_of
from modules.pipeline_ops.sheets import sheet, wanted_format

# UI text of this module's blocks (Chinese in the catalogue, docs/i18n.md)
T_NONE = Msg('none')

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


def nice_ticks(top: int, count: int = 4) -> list[int]:
    """Round y-axis ticks from 0 up to at least `top` (steps of 1, 2 or 5 × 10ⁿ), about `count` of them."""
    raw = max(top, 1) / count
    magnitude = 10 ** max(len(str(int(raw))) - 1, 0)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return list(range(0, -(-max(top, 1) // step) * step + 1, step))


def svg_bars(points: list[tuple[str, int]], y_title: str = "", width: int = 640, height: int = 150) -> str:
    """A bar chart as plain SVG markup (no script, no inline CSS: the CSP stays strict).

    Axes with ticks: the y axis labelled in a left margin (round values, the top one at or above
    the tallest bar, so no label sits on a bar), the x axis with a date about every week."""
    left, bottom, top_pad = 44, 22, 24
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    ticks = nice_ticks(max((v for _, v in points), default=0))
    scale = plot_h / ticks[-1]
    bar = plot_w / max(len(points), 1)
    base = top_pad + plot_h
    grey = 'fill="#5b6474" font-size="11"'
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(y_title)} {escape(points[0][0])} – {escape(points[-1][0])}">'
    ]
    if y_title:
        parts.append(f'<text x="0" y="10" {grey}>{escape(y_title)}</text>')
    for t in ticks:
        y = round(base - t * scale, 1)
        parts.append(f'<line x1="{left}" y1="{y}" x2="{width - 4}" y2="{y}" stroke="#e3e7ee"/>'
                     f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" {grey}>{t}</text>')
    for i, (label, value) in enumerate(points):
        h = round(value * scale, 1)
        x = round(left + i * bar + 1, 1)
        parts.append(
            f'<rect x="{x}" y="{round(base - h, 1)}" width="{max(bar - 2, 1):.1f}" height="{h}" fill="#2458c6">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
    every = max(1, round(len(points) / 5))
    for i in range(len(points) - 1, -1, -every):  # the last day always labelled, then back a step at a time
        x = round(left + (i + 0.5) * bar, 1)
        anchor = "end" if i == len(points) - 1 else ("start" if x - left < 20 else "middle")
        parts.append(f'<line x1="{x}" y1="{base}" x2="{x}" y2="{base + 4}" stroke="#5b6474"/>'
                     f'<text x="{x}" y="{base + 16}" text-anchor="{anchor}" {grey}>{escape(points[i][0][5:])}</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - 4}" y2="{base}" stroke="#5b6474"/>'
                 f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{base}" stroke="#5b6474"/></svg>')
    return "".join(parts)


async def chart_block(request: Request, field: str, value: str, days: int = 30) -> str:
    ctx = ctx_of(request)
    lang = lang_of(request)
    totals = await daily_totals(request, field, value, days_back(ctx.settings.business_timezone, days))
    calls = sum(n for _, n, _ in totals)
    amount = sum((a for _, _, a in totals), Decimal(0))
    title = gettext(lang, "Calls per day, last 30 days")
    link = f"/pipeline_ops/usage_daily?{field}={escape(value)}"
    more = gettext(lang, "Daily report")
    y_axis = gettext(lang, "calls")
    return (
        f'<section class="panel usage-chart"><h2>{title} <small>({calls}, {money(amount, None, lang)})'
        f"</small></h2>{svg_bars([(d.day.isoformat(), n) for d, n, _ in totals], y_axis)}"
        f"{await refusals_block(request, field, value, days)}"
        f'<p><a href="{link}">{more}</a></p></section>'
    )


async def refusals_by_reason(request: Request, field: str, value: str, first: date, last: date) -> list[tuple]:
    """(reason, refusals) of one distributor or pipeline over [first, last], most first."""
    tables = ctx_of(request).catalog.tables
    if "dist_rejections" not in tables:
        return []
    t = tables["dist_rejections"].table
    stmt = (select(t.c.reason, func.sum(t.c.refusals)).where(t.c[field] == value, t.c.day >= first, t.c.day <= last)
            .group_by(t.c.reason).order_by(func.sum(t.c.refusals).desc()))
    async with ctx_of(request).db.connect() as conn:
        return [(r[0], int(r[1])) for r in await conn.execute(stmt)]


async def refusals_block(request: Request, field: str, value: str, days: int) -> str:
    """The refused calls (429 and other refusals) of the chart's days, per reason."""
    lang = lang_of(request)
    today = business_day(ctx_of(request).settings.business_timezone, utcnow())
    counts = await refusals_by_reason(request, field, value, today - timedelta(days=days - 1), today)
    title = gettext(lang, "Refused calls")
    if not counts:
        return f'<p class="refusals">{title}: {T_NONE.render(lang)}</p>'
    items = "".join(f"<li><code>{escape(reason)}</code> {n}</li>" for reason, n in counts)
    return f'<div class="refusals"><h3>{title} <small>({sum(n for _, n in counts)})</small></h3><ul>{items}</ul></div>'


async def pipeline_chart(request: Request, tv: Any, row: dict[str, Any]) -> str:
    return await chart_block(request, "pipeline_id", row["id"])


async def distributor_chart(request: Request, tv: Any, row: dict[str, Any]) -> str:
    return await chart_block(request, "distributor_id", row["id"])




def _parse_day(text: str | None, default: date) -> date:
    try:
        return clamp_day(date.fromisoformat(text)) if text else default
    except ValueError:
        return default


@dataclass
class ReportRow:
    day: date
    distributor_id: str | None
    pipeline_id: str
    currency: str
    calls: int = 0
    units: int = 0
    amount: Decimal = Decimal(0)
    refused: int = 0
    link: str = ""
    pipeline_name: str = ""  # as the calls were billed (their snapshots), in the order first used
    distributor_name: str = ""


def usage_link(row: ReportRow, bounds: dict[date, Day], tz_name: str) -> str:
    """The usage log list filtered to exactly this row's calls: its business day as the list's range
    filter reads a typed time (in the business zone, both ends included, to the second), its
    distributor and pipeline."""
    d = bounds[row.day]
    params = {"pipeline_id": row.pipeline_id, "started_at__from": local_time(d.start, tz_name),
              "started_at__to": local_time(d.end - timedelta(seconds=1), tz_name)}
    if row.distributor_id:
        params["distributor_id"] = row.distributor_id
    return "/pipeline_ops/pipeline_usage_log?" + urlencode(params)


def joined_names(seen: list[tuple[datetime, str]]) -> str:
    """The names a row's calls were billed under, oldest first ("Old → New" after a rename)."""
    out: list[str] = []
    for _, name in sorted(seen, key=lambda x: x[0]):
        if name and name not in out:
            out.append(name)
    return " → ".join(out)


async def report_rows(ctx: Any, days: list[Day], filters: dict[str, str]) -> list[ReportRow]:
    """Totals per day × distributor × pipeline × currency (one query, a CASE per day) with the
    names the calls had when they were admitted (their snapshot columns), and the refusals per
    day × distributor × pipeline, newest day first."""
    t = ctx.catalog.tables["pipeline_usage_log"].table
    day = case(*[(t.c.started_at < d.end, literal(d.day.isoformat())) for d in days])
    stmt = (select(day, t.c.distributor_id, t.c.pipeline_id, t.c.currency, func.count(), func.sum(t.c.units),
                   func.sum(t.c.amount), t.c.pipeline_name, t.c.distributor_name, func.min(t.c.started_at))
            .where(t.c.started_at >= days[0].start, t.c.started_at < days[-1].end, t.c.status.in_(COUNTED),
                   *[t.c[k] == v for k, v in filters.items() if v])
            .group_by(day, t.c.distributor_id, t.c.pipeline_id, t.c.currency, t.c.pipeline_name,
                      t.c.distributor_name))
    rows: dict[tuple, ReportRow] = {}
    names: dict[tuple, tuple[list, list]] = {}
    async with ctx.db.connect() as conn:
        for r in await conn.execute(stmt):
            key = (date.fromisoformat(r[0]), r[1], r[2])
            row = rows.setdefault((*key, r[3]), ReportRow(*key, r[3]))
            row.calls, row.units = row.calls + int(r[4]), row.units + int(r[5] or 0)
            row.amount += Decimal(str(r[6] or 0))
            pipes, dists = names.setdefault((*key, r[3]), ([], []))
            pipes.append((r[9], r[7] or ""))
            dists.append((r[9], r[8] or ""))
        for key, (pipes, dists) in names.items():
            rows[key].pipeline_name, rows[key].distributor_name = joined_names(pipes), joined_names(dists)
        if "dist_rejections" in ctx.catalog.tables:
            rj = ctx.catalog.tables["dist_rejections"].table
            refused = (select(rj.c.day, rj.c.distributor_id, rj.c.pipeline_id, func.sum(rj.c.refusals))
                       .where(rj.c.day >= days[0].day, rj.c.day <= days[-1].day, rj.c.pipeline_id.is_not(None),
                              *[rj.c[k] == v for k, v in filters.items() if v])
                       .group_by(rj.c.day, rj.c.distributor_id, rj.c.pipeline_id))
            first_of: dict[tuple, ReportRow] = {}  # refusals have no currency: on the first row of their key
            for key in sorted(rows, key=lambda k: k[3]):
                first_of.setdefault(key[:3], rows[key])
            for r in await conn.execute(refused):
                key = tuple(r[:3])
                target = first_of.get(key) or rows.setdefault((*key, ""), ReportRow(*key, ""))
                first_of[key] = target
                target.refused += int(r[3])
    bounds = {d.day: d for d in days}
    out = sorted(rows.values(), key=lambda x: (x.day, x.distributor_id or "", x.pipeline_id, x.currency),
                 reverse=True)
    for row in out:
        row.link = usage_link(row, bounds, ctx.settings.business_timezone)
    return out


def report_totals(rows: list[ReportRow]) -> list[dict[str, Any]]:
    """Per currency (refusals have none: their own line), exact."""
    sums: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = sums.setdefault(r.currency, {"currency": r.currency, "calls": 0, "units": 0, "amount": Decimal(0),
                                         "refused": 0})
        s["calls"], s["units"], s["amount"], s["refused"] = (s["calls"] + r.calls, s["units"] + r.units,
                                                             s["amount"] + r.amount, s["refused"] + r.refused)
    return [sums[c] for c in sorted(sums)]


async def _names(ctx: Any, rows: list[ReportRow], filters: dict[str, str]) -> dict[str, str]:
    """Today's names of the filters' and of the rows' distributors and pipelines: for the filter
    chips, and for rows whose calls predate the snapshot columns."""
    names = {}
    async with ctx.db.connect() as conn:
        for table, key in (("distributors", "distributor_id"), ("pipelines", "pipeline_id")):
            ids = {getattr(r, key) for r in rows if getattr(r, key)} | ({filters[key]} if filters[key] else set())
            if ids:
                tt = ctx.catalog.tables[table].table
                names.update({i: n for i, n in await conn.execute(select(tt.c.id, tt.c.name).where(tt.c.id.in_(ids)))})
    for r in rows:
        r.pipeline_name = r.pipeline_name or names.get(r.pipeline_id, r.pipeline_id)
        if r.distributor_id:
            r.distributor_name = r.distributor_name or names.get(r.distributor_id, r.distributor_id)
    return names


async def usage_daily(request: Request) -> Template | Response:
    """Totals per business day × distributor × pipeline × currency, filterable, at most 62 days at
    once; `?format=csv|xlsx` downloads the same table (a page of the `pages` hook: module.json
    gives its path)."""
    ctx = ctx_of(request)
    today = business_day(ctx.settings.business_timezone, utcnow())
    last = _parse_day(request.query_params.get("to"), today)
    first = _parse_day(request.query_params.get("from"), last - timedelta(days=13))
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    if first > last:
        first = last
    filters = {k: request.query_params.get(k, "")[:32] for k in ("distributor_id", "pipeline_id")}
    rows = await report_rows(ctx, days_between(ctx.settings.business_timezone, first, last), filters)
    names = await _names(ctx, rows, filters)
    lang = lang_of(request)
    fmt = wanted_format(request.query_params)
    if fmt:
        internal = gettext(lang, "internal")
        return sheet(fmt, f"usage-{first}-{last}", ["day", "distributor", "pipeline", "currency", "calls", "units",
                                                    "amount", "refused"],
                     [[r.day.isoformat(), r.distributor_name or internal, r.pipeline_name, r.currency, r.calls,
                       r.units, r.amount, r.refused]
                      for r in rows])
    query = {k: jsonable(v) for k, v in {"from": first, "to": last, **filters}.items() if v}
    return render(request, "usage_daily.html", rows=rows, names=names, first=first, last=last, filters=filters,
                  totals=report_totals(rows), timezone=ctx.settings.business_timezone, counted=COUNTED,
                  export=urlencode(query),
                  without={k: urlencode({q: v for q, v in query.items() if q != k}) for k in filters})
