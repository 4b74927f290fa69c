"""SQL built from a list page's URL parameters, outside the views (as Datasette does): the
filters, search, sort and paging a list request may carry, checked against the spec, then
turned into one bound statement; and the code texts a page of rows shows instead of values
(what a picker offers is `app.crud.lookups`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from app.core.i18n import Msg
from app.core.catalog import Catalog, TableView
from app.core.clock import to_utc
from app.core.context import AppContext
from app.core.dialects import nulls_low
from app.crud.lookup_contains import list_candidates
from app.crud.paging import read_page
from app.crud.rows import CrudError, public
from app.crud.validate import Invalid, coerce
from generators.order_indexes import order_key

MAX_ROWS = 500
MAX_PAGE = 1_000_000  # deeper than any list a person pages through; past it OFFSET overflows drivers
LIST_PARAMS = {"page", "rows", "sort", "q", "after", "before"}



@dataclass
class ListQuery:
    page: int = 1
    rows: int = 20
    sort: list[str] = field(default_factory=list)
    q: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    after: str = ""
    before: str = ""


def parse_list_query(tv: TableView, params: dict[str, str], tz_name: str | None = None) -> ListQuery:
    """Query string → ListQuery; any parameter the spec does not allow is a 400. `tz_name`: the zone
    a person types datetime range bounds in (the pages' business zone, `range_bound`); without
    it (the JSON API) they are UTC, like the times the API answers."""
    errors: dict[str, str] = {}
    lq = ListQuery(rows=tv.view["page_rows"])
    filterable = set(tv.view["filter_fields"]) | {s["field"] for s in _parent_links(tv)}
    for key, raw in params.items():
        if key in ("page", "rows"):
            try:
                number = int(raw)
                if number < 1:
                    raise ValueError
                if key == "page" and number > MAX_PAGE:
                    errors[key] = Msg("at most {max_page}", max_page=MAX_PAGE)
                    continue
                setattr(lq, key, min(number, MAX_ROWS) if key == "rows" else number)
            except ValueError:
                errors[key] = Msg("must be a positive whole number")
        elif key == "sort":
            parts = [p.strip().lstrip("+") for p in raw.split(",") if p.strip()]
            names = [p.lstrip("-") for p in parts]
            if parts == tv.view["sort"] or not parts:
                lq.sort = parts
            elif len(parts) > 1:
                errors["sort"] = Msg("sort by one column (or the list's own order)")
            elif names[0] not in tv.view["sortable"] and names[0] not in tv.spec.primary:
                errors["sort"] = Msg("cannot sort by {name}", name=repr(names[0]))
            else:
                lq.sort = parts
        elif key == "q":
            lq.q = raw.strip()[:200]
        elif key in ("after", "before"):
            setattr(lq, key, raw[:1000])
        elif key.endswith(("__from", "__to")):
            name, _, end = key.rpartition("__")
            f = tv.fields.get(name)
            if f is None or name not in tv.view["list_fields"] or f.is_text or f.type == "bin":
                errors[key] = Msg("unknown range filter")
                continue
            try:
                value = range_bound(f, raw, end, tz_name) if raw != "" else None
            except Invalid as exc:
                errors[key] = exc.args[0]
                continue
            low, high = lq.ranges.get(name, (None, None))
            lq.ranges[name] = (value, high) if end == "from" else (low, value)
        elif key in filterable:
            if raw == "":
                continue
            try:
                lq.filters[key] = coerce(tv.fields[key], raw)
            except Invalid as exc:
                errors[key] = exc.args[0]
        elif key in LIST_PARAMS or key.startswith("_"):
            continue
        else:
            errors[key] = Msg("unknown parameter")
    if errors:
        raise CrudError(400, "bad list parameters", errors)
    return lq


_ZONED = re.compile(r"(Z|[+-]\d\d:?\d\d)$", re.IGNORECASE)


def range_bound(f: Any, raw: str, end: str, tz_name: str | None) -> Any:
    """One end of a range filter as the column compares it. A datetime typed by a person is a time
    of `tz_name` unless it names its own offset, turned into the naive UTC the columns hold; an
    upper bound covers the whole unit it was typed to (a day → its last second, a minute → its
    59th second), so "to 2026-12-02" and "to 23:59" include the calls of that day or minute.
    Stored times are whole seconds (`app.core.clock.utcnow`)."""
    value = coerce(f, raw)
    if not f.is_datetime or not isinstance(value, datetime):
        return value
    text = raw.strip()
    try:
        if tz_name and not _ZONED.search(text[10:]):
            value = to_utc(value, tz_name)
        if end == "to":
            clock = text[10:].strip(" Tt")
            if not clock:
                value += timedelta(days=1, seconds=-1)
            elif clock.count(":") == 1:
                value += timedelta(seconds=59)
    except (OverflowError, ValueError):  # at the calendar's ends (year 1, 9999)
        raise Invalid(Msg("is outside the calendar this filter can search")) from None
    return value


def _parent_links(tv: TableView) -> list[dict]:
    """Fields through which a parent record lists this table (code fields), filterable always."""
    return [{"field": c.field} for c in tv.spec.codes]


def where_clauses(tv: TableView, lq: ListQuery) -> list:
    t = tv.table
    clauses = [t.c[name] == value for name, value in lq.filters.items()]
    for name, (low, high) in lq.ranges.items():
        if low is not None:
            clauses.append(t.c[name] >= low)
        if high is not None:
            clauses.append(t.c[name] <= high)
    if lq.q and tv.view["search_fields"]:
        pattern = "%" + lq.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(or_(*[t.c[n].like(pattern, escape="\\") for n in tv.view["search_fields"]]))
    return clauses


def order_by(tv: TableView, sort: list[str]) -> list:
    """The ORDER BY of a list: its sort columns, then the primary key in the first column's
    direction, so rows are in one total order (keyset cursors need it) that one index serves
    (`generators.order_indexes.order_key` builds the same key)."""
    t = tv.table
    return [t.c[name].desc() if desc else t.c[name].asc() for name, desc in order_key(tv.spec, sort or tv.view["sort"])]


_TOTAL = "_list_total"
"""The count rides on the page's own query as an uncorrelated scalar subquery, which every one of
our databases evaluates once: one round trip a page instead of two."""


async def list_rows(ctx: AppContext, tv: TableView, lq: ListQuery) -> dict[str, Any]:
    """One page of rows plus the total, the ecosystem's `{"total": n, "rows": [...]}`, with the
    `next` / `prev` cursors of the pages beside it (`app.crud.paging`).

    The count reads at most `list_count_limit` + 1 rows: above the limit `total` is the limit
    and `total_is_estimate` says so, so counting never grows with the table.
    """
    t = tv.table
    order = order_by(tv, lq.sort)
    shown = [n for n in tv.fields if n not in tv.view["confidential"]]
    cols = [t.c[n] for n in shown] + [o.element for o in order if o.element.name not in shown]
    limit = ctx.settings.list_count_limit
    async with ctx.read_db.connect() as conn:
        where = where_clauses(tv, lq)
        candidates = await list_candidates(conn, tv, lq.q) if lq.q else None
        if candidates is not None:  # the search's rows through the grams, not a scan of the table
            where.append(candidates)
        count_stmt = select(func.count()).select_from(select(t.c[tv.pk]).where(*where).limit(limit + 1).subquery())
        raw_rows, next_, prev = await read_page(conn, tv, [*cols, count_stmt.scalar_subquery().label(_TOTAL)],
                                                where, order, lq, nulls_low(ctx.db.dialect.name))
        if raw_rows:
            total = raw_rows[0][_TOTAL]
        elif lq.page == 1 and not (lq.after or lq.before):
            total = 0
        else:  # past the last page: nothing to carry the count, so ask for it alone
            total = (await conn.execute(count_stmt)).scalar_one()
    rows = [public(tv, r) for r in raw_rows]
    for row in rows:
        del row[_TOTAL]
    return {"total": min(total, limit), "total_is_estimate": total > limit, "page": lq.page,
            "rows_per_page": lq.rows, "rows": rows, "next": next_, "prev": prev}


async def code_texts(ctx: AppContext, tv: TableView, rows: list[dict]) -> dict[str, dict[str, str]]:
    """Display text of code (lookup) fields for a page of rows: one query per code field with
    values on the page, and no connection at all when there is nothing to look up."""
    out: dict[str, dict[str, str]] = {}
    catalog: Catalog = ctx.catalog
    wanted = []
    for code in tv.spec.codes:
        target = catalog.tables.get(code.table) if code.is_plain_table else None
        values = {r.get(code.field) for r in rows if r.get(code.field) is not None}
        if target is not None and values:
            tt = target.table
            wanted.append((code.field, select(tt.c[code.valuefield], tt.c[code.textfield])
                           .where(tt.c[code.valuefield].in_(values))))
    if not wanted:
        return out
    async with ctx.db.connect() as conn:
        for name, stmt in wanted:
            out[name] = {str(v): str(text) for v, text in (await conn.execute(stmt)).all()}
    return out
