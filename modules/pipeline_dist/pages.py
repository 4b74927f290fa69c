"""Operator pages of pipeline_dist beyond its tables' CRUD pages (module.json declares their paths):
the monthly statements (one distributor's, or every distributor's totals for a month), their CSV
and xlsx export (`?format=`), and closing a month."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.response import Redirect, Response, Template
from sqlalchemy import func, select

from app.core.i18n import Msg
from app.core.clock import business_day, month_bounds, utcnow
from app.core.context import ctx_of
from app.crud.rows import CrudError
from app.web.render import render
from app.web.views.common import actor_of, can
from modules.pipeline_dist.statements import COUNTED, Statement, close_month, parse_month, previous_month
from modules.pipeline_dist.statements import statement as statement_of
from modules.pipeline_ops.sheets import sheet, wanted_format

BASE = "/pipeline_dist/statements"


def _month(text: str | None, ctx: Any) -> date:
    """The asked month, else the last one that has ended (the one usually billed)."""
    try:
        return parse_month(text or "")
    except ValueError:
        return previous_month(business_day(ctx.settings.business_timezone, utcnow()).replace(day=1))


async def _distributors(ctx: Any) -> dict[str, str]:
    t = ctx.catalog.tables["distributors"].table
    async with ctx.db.connect() as conn:
        return {r.id: r.name for r in await conn.execute(select(t.c.id, t.c.name).order_by(t.c.name).limit(1000))}


async def _overview(ctx: Any, first: date) -> list[dict[str, Any]]:
    """Every distributor's totals for the month, per currency, in one grouped query, with its close."""
    start, end = month_bounds(ctx.settings.business_timezone, first)
    u, s = ctx.catalog.tables["pipeline_usage_log"].table, ctx.catalog.tables["dist_statements"].table
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(
            select(u.c.distributor_id, u.c.currency, func.count(), func.sum(u.c.units),
                   func.sum(u.c.amount))
            .where(u.c.distributor_id.is_not(None), u.c.started_at >= start, u.c.started_at < end,
                   u.c.status.in_(COUNTED))
            .group_by(u.c.distributor_id, u.c.currency))).all()
        closed = {r.distributor_id: r for r in await conn.execute(
            select(s.c.distributor_id, s.c.closed_at, s.c.totals).where(s.c.month == f"{first:%Y-%m}"))}
    return [{"distributor_id": r[0], "currency": r[1], "calls": int(r[2]), "units": int(r[3] or 0),
             "amount": Decimal(str(r[4] or 0)), "closed": closed.get(r[0])} for r in rows]


def _rows(st: Statement) -> list[list[Any]]:
    """The statement as one table: lines, then adjustments (with the month they correct), then totals."""
    out = [[st.month, line.pipeline, line.name, line.currency, line.price_mode or "", line.calls, line.units,
            line.amount] for line in st.lines]
    out += [[line.month, line.pipeline, line.name, line.currency, line.price_mode or "", line.calls, line.units,
             line.amount] for line in st.adjustments]
    out += [["total", "", "", t["currency"], "", t["calls"], t["units"], Decimal(t["amount"])] for t in st.totals()]
    return out


HEADER = ["month", "pipeline", "name", "currency", "price_mode", "calls", "units", "amount"]


async def statements(request: Request) -> Template | Response:
    """One distributor's statement for a month (`?distributor_id=&month=YYYY-MM`), or, without a
    distributor, every distributor's totals for the month."""
    ctx = ctx_of(request)
    first = _month(request.query_params.get("month"), ctx)
    names = await _distributors(ctx)
    distributor_id = request.query_params.get("distributor_id") or ""
    fmt = wanted_format(request.query_params)
    if distributor_id not in names:
        overview = await _overview(ctx, first)
        if fmt:
            return sheet(fmt, f"statements-{first:%Y-%m}", ["distributor", "currency", "calls", "units", "amount",
                                                             "closed_at"],
                         [[names.get(o["distributor_id"], o["distributor_id"]), o["currency"], o["calls"], o["units"],
                           o["amount"], o["closed"].closed_at if o["closed"] else ""] for o in overview])
        return render(request, "dist_statements.html", names=names, month=f"{first:%Y-%m}", overview=overview,
                      st=None, distributor_id="", timezone=ctx.settings.business_timezone, base=BASE)
    st = await statement_of(ctx, distributor_id, first)
    if fmt:
        return sheet(fmt, f"statement-{names[distributor_id]}-{st.month}", HEADER, _rows(st))
    query = urlencode({"distributor_id": distributor_id, "month": st.month})
    return render(request, "dist_statements.html", names=names, month=st.month, overview=None, st=st,
                  distributor_id=distributor_id, timezone=st.timezone, base=BASE, query=query,
                  can_close=st.closed_at is None and can(request, f"{BASE}/close")
                  and first < business_day(st.timezone, utcnow()).replace(day=1),
                  closed_now=request.query_params.get("closed") == "1")


async def close_statement(request: Request) -> Redirect | Template:
    """POST distributor_id, month: freeze that statement, then show it."""
    ctx = ctx_of(request)
    form = await request.form()
    distributor_id, month = str(form.get("distributor_id") or ""), str(form.get("month") or "")
    try:
        first = parse_month(month)
        if distributor_id not in await _distributors(ctx):
            raise CrudError(404, Msg('no such distributor'))
        await close_month(ctx, actor_of(request), distributor_id, first)
    except ValueError:
        raise CrudError(400, Msg('a month is YYYY-MM')) from None
    return Redirect(path=f"{BASE}?{urlencode({'distributor_id': distributor_id, 'month': month, 'closed': 1})}",
                    status_code=303)


PAGES = {"statements": statements, "close_month": close_statement}
