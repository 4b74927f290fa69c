"""Monthly statements: what a distributor's calls of one business month add up to, per pipeline,
currency and price mode, and the month's close, which freezes it.

Why it is built this way:

* A month is a business-time-zone month (`app.core.clock.month_bounds`) and a call belongs to the
  month it started in, like the monthly quotas; every status the usage log keeps counts (running,
  succeeded, failed, expired), as in the daily report and `GET /usage`.
* Money is summed in SQL as whole millionths (`ROUND(amount * 1e6)`): exact on MariaDB's DECIMAL
  and on SQLite, whose DECIMAL is a float (a float sum of fractions drifts; one of whole numbers
  is exact up to 2**53 millionths, nine billion in money). The totals are the sum of the lines, in
  Decimal, so they equal the sum of the usage rows to the last of the 6 places.
* A closed month is a row of `dist_statements`: its lines as JSON, written once in the close's
  transaction with an audit row, never recomputed (the view has no edit or delete), so later price
  changes or row edits do not alter it. Calls of a closed month that change afterwards (a late
  finish corrects units and amount; a lease expiry) are not lost: the next month's statement shows
  the difference between a recount of the closed month and its frozen lines as adjustments, and
  freezes them with it when it closes.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.core.i18n import Msg
from app.core.clock import business_day, month_bounds, utcnow
from app.core.ids import new_id
from app.crud.rows import Actor, CrudError
from app.crud.store import audit, write_transaction

COUNTED = ("running", "succeeded", "failed", "expired")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> date:
    """`2026-11` → its first day; anything else (or a year the calendar helpers refuse) → ValueError."""
    m = _MONTH.match(text or "")
    if m is None or not 1900 <= int(m.group(1)) <= 9000:
        raise ValueError("a month is YYYY-MM")
    return date(int(m.group(1)), int(m.group(2)), 1)


def previous_month(first: date) -> date:
    return date(first.year - (first.month == 1), 12 if first.month == 1 else first.month - 1, 1)


@dataclass
class Line:
    """One pipeline × currency × price mode of a month (or, with `month`, an adjustment of that month)."""

    pipeline_id: str
    pipeline: str
    name: str
    currency: str
    price_mode: str | None
    calls: int
    units: int
    amount: Decimal
    month: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return self.pipeline_id, self.currency, self.price_mode

    def out(self) -> dict[str, Any]:
        """As JSON: the amount a Decimal string with 6 places."""
        return {**asdict(self), "amount": f"{self.amount:.6f}"}


@dataclass
class Statement:
    distributor_id: str
    month: str
    timezone: str
    closed_at: datetime | None
    closed_by: str | None
    lines: list[Line]
    adjustments: list[Line]

    def totals(self) -> list[dict[str, Any]]:
        """Per currency: the lines and adjustments added up (Decimal, exact)."""
        sums: dict[str, list] = {}
        for line in [*self.lines, *self.adjustments]:
            s = sums.setdefault(line.currency, [0, 0, Decimal(0)])
            s[0], s[1], s[2] = s[0] + line.calls, s[1] + line.units, s[2] + line.amount
        return [{"currency": c, "calls": n, "units": u, "amount": f"{a:.6f}"} for c, (n, u, a) in sorted(sums.items())]


async def recount(conn: Any, catalog: Any, distributor_id: str, first: date, tz_name: str) -> list[Line]:
    """The month's usage rows of this distributor, grouped, from the rows themselves. A line names
    its pipeline as the calls were billed (their snapshot code and name; today's for rows from
    before the snapshots): a pipeline renamed within the month reads "Old → New"."""
    start, end = month_bounds(tz_name, first)
    u, p = catalog.tables["pipeline_usage_log"].table, catalog.tables["pipelines"].table
    code, name = func.coalesce(u.c.pipeline_code, p.c.code), func.coalesce(u.c.pipeline_name, p.c.name)
    stmt = (select(u.c.pipeline_id, code, name, u.c.currency, u.c.price_mode, func.count(),
                   func.sum(u.c.units), func.sum(u.c.amount), func.min(u.c.started_at))
            .select_from(u.outerjoin(p, p.c.id == u.c.pipeline_id))
            .where(u.c.distributor_id == distributor_id, u.c.started_at >= start, u.c.started_at < end,
                   u.c.status.in_(COUNTED))
            .group_by(u.c.pipeline_id, code, name, u.c.currency, u.c.price_mode))
    lines: dict[tuple, Line] = {}
    seen: dict[tuple, list[tuple[datetime, str, str]]] = {}
    for r in (await conn.execute(stmt)).all():
        line = Line(r[0], "", "", r[3], r[4], int(r[5]), int(r[6] or 0), Decimal(str(r[7] or 0)))
        was = lines.setdefault(line.key, line)
        if was is not line:
            was.calls, was.units, was.amount = was.calls + line.calls, was.units + line.units, was.amount + line.amount
        seen.setdefault(line.key, []).append((r[8], r[1] or r[0], r[2] or ""))
    for key, names in seen.items():
        names.sort(key=lambda x: x[0])
        lines[key].pipeline = " → ".join(dict.fromkeys(c for _, c, _ in names))
        lines[key].name = " → ".join(dict.fromkeys(n for _, _, n in names if n))
    return sorted(lines.values(), key=lambda x: (x.pipeline, x.currency, x.price_mode or ""))


def _lines_of(data: list[dict[str, Any]]) -> list[Line]:
    return [Line(**{**d, "amount": Decimal(d["amount"])}) for d in data]


async def frozen(conn: Any, catalog: Any, distributor_id: str, month: str) -> dict[str, Any] | None:
    """The closed month's stored row, or None while the month is open."""
    t = catalog.tables["dist_statements"].table
    row = (await conn.execute(select(t).where(t.c.distributor_id == distributor_id, t.c.month == month))).first()
    return None if row is None else dict(row._mapping)


async def adjustments(conn: Any, catalog: Any, distributor_id: str, first: date, tz_name: str) -> list[Line]:
    """What changed in the previous month since it was closed: a recount of it minus its frozen lines."""
    before = previous_month(first)
    closed = await frozen(conn, catalog, distributor_id, f"{before:%Y-%m}")
    if closed is None:
        return []
    was = {line.key: line for line in _lines_of(json.loads(closed["lines"])["lines"])}
    out = []
    for line in await recount(conn, catalog, distributor_id, before, tz_name):
        old = was.pop(line.key, None)
        if old is not None:
            line.calls, line.units = line.calls - old.calls, line.units - old.units
            line.amount -= old.amount
        out.append(line)
    out += [Line(o.pipeline_id, o.pipeline, o.name, o.currency, o.price_mode, -o.calls, -o.units, -o.amount)
            for o in was.values()]  # rows gone since (deleted by an operator)
    for line in out:
        line.month = f"{before:%Y-%m}"
    return [line for line in out if line.calls or line.units or line.amount]


async def statement(ctx: Any, distributor_id: str, first: date) -> Statement:
    """The month's statement: the frozen one when closed, else counted now from the usage rows."""
    tz_name, month = ctx.settings.business_timezone, f"{first:%Y-%m}"
    async with ctx.db.connect() as conn:
        closed = await frozen(conn, ctx.catalog, distributor_id, month)
        if closed is not None:
            data = json.loads(closed["lines"])
            return Statement(distributor_id, month, tz_name, closed["closed_at"], closed["closed_by"],
                             _lines_of(data["lines"]), _lines_of(data["adjustments"]))
        return Statement(distributor_id, month, tz_name, None, None,
                         await recount(conn, ctx.catalog, distributor_id, first, tz_name),
                         await adjustments(conn, ctx.catalog, distributor_id, first, tz_name))


async def close_month(ctx: Any, actor: Actor, distributor_id: str, first: date) -> Statement:
    """Freeze the month's statement (stored once, audited). Only a month that has ended can close,
    and only once (409 after)."""
    tz_name, month, now = ctx.settings.business_timezone, f"{first:%Y-%m}", utcnow()
    if first >= business_day(tz_name, now).replace(day=1):
        raise CrudError(409, Msg('only a month that has ended can be closed'))
    tv = ctx.catalog.tables["dist_statements"]

    async def write(conn: Any) -> Statement:
        if await frozen(conn, ctx.catalog, distributor_id, month) is not None:
            raise CrudError(409, Msg('{month} is already closed for this distributor', month=month))
        result = Statement(distributor_id, month, tz_name, now, actor.username,
                           await recount(conn, ctx.catalog, distributor_id, first, tz_name),
                           await adjustments(conn, ctx.catalog, distributor_id, first, tz_name))
        row = {"id": new_id(), "distributor_id": distributor_id, "month": month,
               "calls": sum(t["calls"] for t in result.totals()),
               "totals": "; ".join(f"{t['amount']} {t['currency']}" for t in result.totals())[:500],
               "lines": json.dumps({"lines": [x.out() for x in result.lines],
                                    "adjustments": [x.out() for x in result.adjustments]}, ensure_ascii=False),
               "closed_at": now, "closed_by": actor.username, "created_at": now}
        await conn.execute(tv.table.insert().values(**row))
        await audit(ctx, conn, actor, "close_month", tv, row["id"], None, row)
        return result

    try:
        return await write_transaction(ctx, write)
    except IntegrityError:  # a twin close won the unique (distributor, month) index
        raise CrudError(409, Msg('{month} is already closed for this distributor', month=month)) from None
