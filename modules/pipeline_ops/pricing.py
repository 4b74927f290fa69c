"""Which price applies to a call, and what it costs.

Precedence, most specific first:
  1. the distributor's own price (its `distributor_pipeline` link: enabled, within its effective
     period, `price_mode` set) — a negotiated price beats any list price;
  2. a `pipeline_pricing` row for the step and the model;
  3. a row for the step (model empty = any model);
  4. the pipeline's list price (step and model empty).
Only `active` rows count, and only while `effective_from <= at < effective_to` (empty end = open),
so a price change takes effect at one exact instant and the old price stops at that same instant.

Money is `Decimal` end to end, never float. Amounts are quantized to 6 decimal places (the
columns' scale, decimal(18,6)) with ROUND_HALF_UP, the rounding people expect on an invoice:
  * unit:    amount = unit_price × units
  * package: amount = ceil(units / package_units) × package_price — a started package is
             charged in full (150 units on 100-unit packages = 2 packages).
A link has no currency or billing unit of its own, so a distributor price carries those of the
list price it replaces (CNY / call when the pipeline has none).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from html import escape
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg, gettext, pmsg
from app.core.clock import business_day, day_bounds, month_bounds

# UI text of this module's blocks (Chinese in the catalogue, docs/i18n.md)
T_EFFECTIVE_PRICES = Msg('Effective prices')
T_NO_PRICE_SET = Msg('No price set')
T_USAGE = Msg('Usage')
T_PERIODS_IN = Msg('Periods in ')

SCALE = Decimal("0.000001")
DEFAULT_CURRENCY = "CNY"
DEFAULT_UNIT = "call"
LEVELS = ("step_model", "step", "pipeline")  # most specific first


def q6(value: Decimal) -> Decimal:
    """Quantize to the money columns' scale, ROUND_HALF_UP."""
    return value.quantize(SCALE, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Price:
    """A resolved price. For package pricing `unit_price` is the package's per-unit price
    (package_price / package_units, rounded), kept for display and the usage log; `amount`
    always charges whole packages."""

    mode: str  # 'unit' | 'package'
    unit_price: Decimal
    package_units: int | None
    package_price: Decimal | None
    currency: str
    source: str  # 'distributor' | 'step_model' | 'step' | 'pipeline'
    billing_unit: str

    def amount(self, units: int) -> Decimal:
        """What `units` cost (see the module docstring for the rules and rounding)."""
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise ValueError("units must be a whole number ≥ 0")
        with localcontext() as ctx:
            ctx.prec = 60  # 18-digit prices × 19-digit counts must never round before quantize
            if self.mode == "package":
                packages = -(-units // int(self.package_units or 1))
                return q6((self.package_price or Decimal(0)) * packages)
            return q6(self.unit_price * units)

    def as_json(self) -> dict[str, Any]:
        """Exact JSON: decimals as strings."""
        return {"mode": self.mode, "unit_price": str(self.unit_price), "package_units": self.package_units,
                "package_price": None if self.package_price is None else str(self.package_price),
                "currency": self.currency, "billing_unit": self.billing_unit, "source": self.source}


def in_period(row: Mapping[str, Any], at: datetime) -> bool:
    """effective_from <= at < effective_to; an empty bound is open."""
    start, end = row.get("effective_from"), row.get("effective_to")
    return (start is None or start <= at) and (end is None or at < end)


def _level(row: Mapping[str, Any], step_id: str | None, model: str | None) -> str | None:
    """Which precedence level a pricing row is at for this call, or None if it does not apply."""
    row_step, row_model = row.get("step_id"), row.get("model")
    if row_step is None:
        return "pipeline" if row_model is None else None  # a model price needs a step (see rules)
    if row_step != step_id:
        return None
    if row_model is None:
        return "step"
    return "step_model" if model is not None and row_model == model else None


def _price_of(row: Mapping[str, Any], source: str, currency: str, billing_unit: str) -> Price | None:
    """A row's price, or None when its mode lacks the numbers it needs (never guess a price)."""
    mode = row.get("price_mode")
    if mode == "unit" and row.get("unit_price") is not None:
        return Price("unit", Decimal(row["unit_price"]), None, None, currency, source, billing_unit)
    units, price = row.get("package_units"), row.get("package_price")
    if mode == "package" and units and price is not None:
        with localcontext() as ctx:
            ctx.prec = 60
            per_unit = q6(Decimal(price) / int(units))
        return Price("package", per_unit, int(units), Decimal(price), currency, source, billing_unit)
    return None


def pick_price(rows: Iterable[Mapping[str, Any]], link: Mapping[str, Any] | None = None, *,
               step_id: str | None = None, model: str | None = None, at: datetime) -> Price | None:
    """The price for a call, from one pipeline's pricing rows and the distributor's link (if any).

    Pure, so the precedence is testable without a database. Rows that are inactive, outside their
    period or for another step/model are ignored. Two rows at the same level (refused on save,
    but possible through raw SQL) resolve to the later effective_from, then the larger id, so the
    answer never depends on row order.
    """
    best: tuple[int, datetime, str, Mapping[str, Any]] | None = None
    for row in rows:
        level = _level(row, step_id, model)
        if level is None or row.get("status", "active") != "active" or not in_period(row, at):
            continue
        rank = (-LEVELS.index(level), row.get("effective_from") or datetime.min, str(row.get("id", "")))
        if best is None or rank > best[:3]:
            best = (*rank, row)
    listed = None
    if best is not None:
        row = best[3]
        listed = _price_of(row, LEVELS[-best[0]], row.get("currency") or DEFAULT_CURRENCY,
                           row.get("billing_unit") or DEFAULT_UNIT)
    usable = link is not None and str(link.get("enabled")) == "1" and link.get("price_mode")
    if usable and in_period(link, at):
        own = _price_of(link, "distributor", listed.currency if listed else DEFAULT_CURRENCY,
                        listed.billing_unit if listed else DEFAULT_UNIT)
        if own is not None:
            return own
    return listed


def _pricing_query(catalog: Any, pipeline_ids: list[str], step_id: str | None, model: str | None,
                   at: datetime):
    t = catalog.tables["pipeline_pricing"].table
    levels = [and_(t.c.step_id.is_(None), t.c.model.is_(None))]
    if step_id is not None:
        levels.append(and_(t.c.step_id == step_id, t.c.model.is_(None)))
        if model is not None:
            levels.append(and_(t.c.step_id == step_id, t.c.model == model))
    return select(t).where(t.c.pipeline_id.in_(pipeline_ids), t.c.status == "active",
                           t.c.effective_from <= at, or_(t.c.effective_to.is_(None), t.c.effective_to > at),
                           or_(*levels))


async def resolve_price(conn: AsyncConnection, catalog: Any, *, distributor_id: str | None, pipeline_id: str,
                        step_id: str | None = None, model: str | None = None, at: datetime) -> Price | None:
    """The price of one call at `at` (naive UTC): two indexed queries, then `pick_price`."""
    rows = [r._mapping for r in await conn.execute(_pricing_query(catalog, [pipeline_id], step_id, model, at))]
    link = None
    if distributor_id is not None:
        lt = catalog.tables["distributor_pipeline"].table
        found = (await conn.execute(select(lt).where(lt.c.distributor_id == distributor_id,
                                                     lt.c.pipeline_id == pipeline_id))).first()
        link = found._mapping if found else None
    return pick_price(rows, link, step_id=step_id, model=model, at=at)


async def resolve_prices(conn: AsyncConnection, catalog: Any, *, distributor_id: str | None,
                         pipeline_ids: list[str], at: datetime) -> dict[str, Price | None]:
    """Whole-pipeline prices for many pipelines in two queries (list pages, `GET /pipelines`)."""
    if not pipeline_ids:
        return {}
    by_pipeline: dict[str, list[Mapping[str, Any]]] = {p: [] for p in pipeline_ids}
    for r in await conn.execute(_pricing_query(catalog, pipeline_ids, None, None, at)):
        by_pipeline[r.pipeline_id].append(r._mapping)
    links: dict[str, Mapping[str, Any]] = {}
    if distributor_id is not None:
        lt = catalog.tables["distributor_pipeline"].table
        for r in await conn.execute(select(lt).where(lt.c.distributor_id == distributor_id,
                                                     lt.c.pipeline_id.in_(pipeline_ids))):
            links[r.pipeline_id] = r._mapping
    return {p: pick_price(rows, links.get(p), at=at) for p, rows in by_pipeline.items()}


# ---- record-page blocks ---------------------------------------------------------------------

def choice_label(tv: Any, field: str, value: Any, lang: str) -> str:
    for c in tv.fields[field].choices or ():
        if c.value == str(value):
            return c.label(lang)
    return "" if value is None else str(value)


def describe(price: Price, units_label: str, lang: str = "zh") -> str:
    """'0.02 CNY / Call' or '100.00 CNY / 1,000 Call' (escaped): the package price as money, a unit
    price at its own scale (`app.web.formatting`, as every page shows them)."""
    from app.web.formatting import money, unit_price

    if price.mode == "package":
        text = (f"{money(price.package_price, price.currency, lang)} {price.currency} / "
                f"{price.package_units:,} {units_label}")
    else:
        text = f"{unit_price(price.unit_price, price.currency, 6, lang)} {price.currency} / {units_label}"
    return escape(text)


def table_html(cols: list[str], rows: list[str]) -> str:
    """A list table from header texts and ready `<tr>` rows (callers escape cell values)."""
    return ("<div class='table-wrap'><table class='list'><thead><tr>"
            + "".join(f"<th scope='col'>{c}</th>" for c in cols)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _when(value: datetime | None, lang: str, tz_name: str) -> str:
    from app.web.formatting import local_time

    return escape(local_time(value, tz_name)) if value else gettext(lang, 'open')


async def prices_block(request: Any, tv: Any, row: Mapping[str, Any]) -> str:
    """The pipeline page's "effective prices" block: what each level charges now, and what is scheduled."""
    from app.core.clock import utcnow
    from app.core.context import ctx_of
    from app.web.ui import lang_of

    ctx, lang, now = ctx_of(request), lang_of(request), utcnow()
    tz = ctx.settings.business_timezone
    ptv = ctx.catalog.tables["pipeline_pricing"]
    t, st = ptv.table, ctx.catalog.tables["pipeline_steps"].table
    stmt = (select(t, st.c.name.label("step_name")).select_from(t.outerjoin(st, st.c.id == t.c.step_id))
            .where(t.c.pipeline_id == row["id"], t.c.status == "active",
                   or_(t.c.effective_to.is_(None), t.c.effective_to > now))
            .order_by(st.c.seq, st.c.name, t.c.model, t.c.effective_from).limit(200))
    async with ctx.db.connect() as conn:
        rows = [r._mapping for r in await conn.execute(stmt)]
    head = (f"<section class='extra ops-prices'><h2>{T_EFFECTIVE_PRICES.render(lang)}</h2>")
    if not rows:
        return head + f"<p class='empty'>{T_NO_PRICE_SET.render(lang)}</p></section>"
    cols = [gettext(lang, 'Level'), gettext(lang, 'Step'), gettext(lang, 'Model'),
            gettext(lang, 'Price'), pmsg('price', 'From').render(lang) + f" ({escape(tz)})",
            pmsg('price', 'To').render(lang) + f" ({escape(tz)})",
            gettext(lang, 'State')]
    level_names = {"pipeline": gettext(lang, 'Pipeline'), "step": gettext(lang, 'Step'),
                   "step_model": gettext(lang, 'Step + model')}
    body = []
    for r in rows:
        level = "pipeline" if r["step_id"] is None else ("step" if r["model"] is None else "step_model")
        price = _price_of(r, level, r["currency"], r["billing_unit"])
        state = gettext(lang, 'current') if in_period(r, now) else \
            gettext(lang, 'scheduled')
        cells = [level_names[level], escape(r["step_name"] or ""), escape(r["model"] or ""),
                 describe(price, choice_label(ptv, "billing_unit", r["billing_unit"], lang), lang)
                 if price else "?", _when(r["effective_from"], lang, tz), _when(r["effective_to"], lang, tz), state]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return head + table_html(cols, body) + "</section>"


def period_bounds(tz_name: str, now_utc: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Today and this month in the business time zone, as naive UTC [start, end) bounds.

    Built from local calendar dates (not by adding 24 h) so a DST change never shifts a day.
    """
    local = business_day(tz_name, now_utc)
    return {"day": day_bounds(tz_name, local), "month": month_bounds(tz_name, local)}


async def usage_counts(conn: AsyncConnection, catalog: Any, pipeline_id: str, tz_name: str,
                       now_utc: datetime) -> dict[str, int]:
    """Calls counted against the pipeline's quotas (rejected calls never count) and calls running now."""
    t = catalog.tables["pipeline_usage_log"].table
    out = {}
    for name, (start, end) in period_bounds(tz_name, now_utc).items():
        out[name] = (await conn.execute(select(func.count()).select_from(t).where(
            t.c.pipeline_id == pipeline_id, t.c.started_at >= start, t.c.started_at < end,
            t.c.status.not_in(["rejected"])))).scalar_one()
    out["running"] = (await conn.execute(select(func.count()).select_from(t).where(
        t.c.pipeline_id == pipeline_id, t.c.status == "running"))).scalar_one()
    return out


async def usage_block(request: Any, tv: Any, row: Mapping[str, Any]) -> str:
    """The pipeline page's usage block: today / this month / running now against its capacity."""
    from app.core.clock import utcnow
    from app.core.context import ctx_of
    from app.web.ui import lang_of

    ctx, lang = ctx_of(request), lang_of(request)
    ct = ctx.catalog.tables["pipeline_capacity"].table
    async with ctx.db.connect() as conn:
        used = await usage_counts(conn, ctx.catalog, row["id"], ctx.settings.business_timezone, utcnow())
        cap = (await conn.execute(
            select(ct).where(ct.c.pipeline_id == row["id"], ct.c.status == "active"))).first()
    limits = {"day": cap.daily_quota if cap else None, "month": cap.monthly_quota if cap else None,
              "running": cap.max_concurrency if cap else None}
    names = {"day": gettext(lang, 'Today'), "month": gettext(lang, 'This month'),
             "running": gettext(lang, 'Running now')}
    cols = [gettext(lang, 'Period'), gettext(lang, 'Used'), gettext(lang, 'Limit'),
            gettext(lang, 'Remaining')]
    body = []
    for key in ("day", "month", "running"):
        limit = limits[key]
        cells = [names[key], str(used[key]),
                 gettext(lang, 'unlimited') if limit is None else str(limit),
                 "" if limit is None else str(max(0, limit - used[key]))]
        over = " class='over'" if limit is not None and used[key] >= limit else ""
        body.append(f"<tr{over}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<section class='extra ops-usage'><h2>{T_USAGE.render(lang)}</h2>"
            f"<p class='hint'>{T_PERIODS_IN.render(lang)}"
            f"{escape(ctx.settings.business_timezone)}</p>" + table_html(cols, body) + "</section>")
