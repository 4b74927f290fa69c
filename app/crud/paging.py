"""Keyset paging for every list: a page reached by a cursor costs the same at any depth.

A list is ordered by its sort columns with the primary key last (`app.crud.query.order_by`),
and the compiler guarantees an index of exactly that key (`generators.order_indexes`). A page's
`next` cursor holds its last row's order values, `prev` its first row's; the next page is the
rows strictly after the one (`WHERE key > cursor ORDER BY key LIMIT n`), the previous the rows
strictly before the other (the order reversed, then the rows turned back), so either is one index
range however deep it is. `page=N` without a cursor is still OFFSET (a typed page number, the
numbered links near the start); the page number a cursor link carries only labels the page.

NULLs: MariaDB and SQLite sort them first ascending, PostgreSQL last (`app.core.dialects`); the
cursor condition places NULL where the database does, so a nullable sort column pages exactly.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from app.core.catalog import TableView
from app.core.driver_reads import fetch_mappings
from app.core.i18n import Msg
from app.crud.rows import CrudError, jsonable
from app.crud.validate import Invalid, coerce

Order = list[UnaryExpression]


def is_desc(o: UnaryExpression) -> bool:
    return o.modifier is operators.desc_op


def reverse(order: Order) -> Order:
    """The same key the other way round: what the page before a cursor is read in."""
    return [o.element.asc() if is_desc(o) else o.element.desc() for o in order]


def encode(order: Order, row: Any) -> str:
    """A row's order values (a mapping) as an opaque, URL-safe cursor."""
    values = [jsonable(row[o.element.name]) for o in order]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def decode(tv: TableView, order: Order, cursor: str, param: str) -> list[Any]:
    """A cursor back into typed values of the order's columns; anything else is a 400."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, list) or len(values) != len(order):
            raise ValueError
        return [_value(tv, o.element.name, v) for o, v in zip(order, values, strict=True)]
    except (ValueError, Invalid, TypeError, binascii.Error):
        raise CrudError(400, "bad list parameters", {param: Msg("not a cursor of this list")}) from None


def _value(tv: TableView, name: str, raw: Any) -> Any:
    f = tv.fields[name]
    if raw is None:
        return None
    if f.type in ("str", "char", "text"):
        if not isinstance(raw, str):
            raise ValueError
        return raw
    return coerce(f, raw)


def after(order: Order, values: list[Any], nulls_low: bool) -> ColumnElement:
    """Rows strictly after `values` in `order`: (c1, c2, ..) compared column by column in each
    column's direction, portable SQL (no row-value comparison). `nulls_low`: the database sorts
    NULL below every value."""
    clauses = []
    for i, o in enumerate(order):
        same = [_equal(order[j].element, values[j]) for j in range(i)]
        clauses.append(and_(*same, _later(o, values[i], nulls_low)))
    return or_(*clauses)


def _equal(col: Any, value: Any) -> ColumnElement:
    return col.is_(None) if value is None else col == value


def _later(o: UnaryExpression, value: Any, nulls_low: bool) -> ColumnElement:
    col = o.element
    nulls_first = nulls_low != is_desc(o)
    if value is None:
        return col.is_not(None) if nulls_first else false()
    later = col < value if is_desc(o) else col > value
    return or_(later, col.is_(None)) if not nulls_first and col.nullable else later


async def read_page(conn: AsyncConnection, tv: TableView, cols: list, where: list, order: Order, lq: Any,
                    nulls_low: bool) -> tuple[list[Any], str | None, str | None]:
    """One page of the rows matching `where` in `order`: after `lq.after`, before `lq.before`,
    else page `lq.page` by OFFSET; with the cursors of the pages next to it (None at either end).
    One row more than the page is read to know whether another page follows. Rows are mappings
    (`app.core.driver_reads`: on MariaDB the driver sends this statement itself).

    The page's keys are found first by themselves (`SELECT pk ... ORDER BY key LIMIT`, which the
    order's index answers alone, skipped rows included), then only those rows are read: so the
    database walks the index instead of sorting the table, even where a whole-row read would tempt
    it to (a small table, an OFFSET)."""
    n = lq.rows
    forward = not lq.before
    key = order if forward else reverse(order)
    keys = select(tv.table.c[tv.pk]).where(*where)
    if lq.after or lq.before:
        values = decode(tv, order, lq.after or lq.before, "after" if forward else "before")
        keys = keys.where(after(key, values, nulls_low))
    else:
        keys = keys.offset((lq.page - 1) * n)
    page = keys.order_by(*key).limit(n + 1).subquery("page")
    t = tv.table
    rows = await fetch_mappings(conn, select(*cols).select_from(t.join(page, t.c[tv.pk] == page.c[tv.pk]))
                                .order_by(*key))
    more, rows = len(rows) > n, rows[:n]
    if lq.before:
        has_next, has_prev, rows = True, more, rows[::-1]
    else:
        has_next, has_prev = more, bool(lq.after) or lq.page > 1
    if not rows:
        return rows, None, None
    return rows, encode(order, rows[-1]) if has_next else None, encode(order, rows[0]) if has_prev else None
