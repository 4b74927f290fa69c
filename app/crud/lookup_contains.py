"""The picker's contains rank: one query per searched field, through the grams where the spec has them.

A field with an `idxtype: "contains"` index has its trigrams in `<table>_lk_contains`
(`generators.lookup_grams`). Every gram of the typed text must be a gram of a value that contains
it, so the rarest of them bounds the rows to read: the database makes the grams of the text
(the same `LOWER(SUBSTR(...))` as its triggers, so both sides normalise alike), a capped count per
gram and field says which is rarest, and the field's query reads the rows that have it in the side
table's order (gram, field, row id), confirming each with the same `LIKE` as the scan, and stops
when the page is full. A field where some gram never occurs cannot contain the text and is
skipped. A rare gram means few rows to confirm; a common one (`number`) means the text is common
too, so the page fills after a few. Other fields, and a text of fewer than three characters (no
gram), keep the scan of the field's index in its order.

A list's search box (`q`) uses the same grams (`list_candidates`) when every field it searches has
them: the rows with each field's rarest gram bound the rows the `LIKE` must confirm, for the page
and its count alike.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, and_, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from app.core.cache import TTLCache
from app.core.catalog import TableView
from generators.lookup_grams import gram_table_name

RARE = 2000
"""Counting a gram's rows stops here: past it, which gram drives matters little (the text is common)."""
PROBED = 6
"""The grams counted at most, spread over the text: any of them bounds the rows, the rarest best."""
_COUNTS = TTLCache(ttl=60.0, size=20_000)
"""(database, table, gram, field) → capped count. Typing adds a gram per keystroke, so most are
counted once. A stale count only picks a worse gram to drive. A zero is kept for choosing only:
the picker skips a field on a fresh zero alone, since a row written since would be skipped too."""
_GRAMS = TTLCache(ttl=3600.0, size=20_000)
"""(database, text) → its grams: the database's functions of the text alone, so they never change."""


def _positions(length: int) -> list[int]:
    """1-based starts of the grams to count: all of them, or PROBED spread from first to last."""
    last = length - 2
    if last <= PROBED:
        return list(range(1, last + 1))
    return sorted({1 + round(i * (last - 1) / (PROBED - 1)) for i in range(PROBED)})


async def _grams(conn: AsyncConnection, q: str) -> list[str]:
    """The grams of `q` as the database makes them, with the functions of its triggers."""
    key = (str(conn.engine.url), q)
    grams = _GRAMS.peek(key)
    if grams is None:
        text = literal(q)
        cols = [func.lower(func.substr(text, n, 3)).label(f"g{n}") for n in _positions(len(q))]
        row = (await conn.execute(select(*cols))).one()
        grams = list(dict.fromkeys(str(g) for g in row))
        _GRAMS.put(key, grams)
    return grams


async def _counts(conn: AsyncConnection, grams: Table, found: list[str], fields: list[str], *,
                  cached_zeros: bool = False) -> dict:
    """(gram, field) → rows that have it, counted up to RARE. `cached_zeros`: a kept zero will do
    (the caller only chooses a gram by it); otherwise a zero is counted again."""
    db = str(conn.engine.url)
    counts = {(g, f): _COUNTS.peek((db, grams.name, g, f)) for g in found for f in fields}
    if not cached_zeros:
        counts = {key: n or None for key, n in counts.items()}
    parts = []
    for g, f in (key for key, n in counts.items() if n is None):
        capped = select(grams.c.row_id).where(grams.c.gram == g, grams.c.field == f).limit(RARE).subquery()
        parts.append(select(literal(g).label("gram"), literal(f).label("field"),
                            func.count().label("n")).select_from(capped))
    for r in (await conn.execute(union_all(*parts))).all() if parts else []:
        counts[(r.gram, r.field)] = r.n
        _COUNTS.put((db, grams.name, r.gram, r.field), r.n)
    return counts


def _rarest(found: list[str], counts: dict, field: str) -> tuple[int, str]:
    """(its count, the gram) of the text's gram with the fewest rows in `field`: the one to drive."""
    return min((counts.get((g, field)) or 0, g) for g in found)


def _grams_of(tv: TableView) -> Table | None:
    return tv.table.metadata.tables.get(gram_table_name(tv.name))


async def list_candidates(conn: AsyncConnection, tv: TableView, q: str) -> ColumnElement | None:
    """A necessary condition for a row to match a list search for `q` in `tv`'s search fields, an
    index range of the side table: the rows with each field's rarest gram of `q` in that field.
    None where the grams cannot narrow the search (a field without them, a text under three
    characters, or a gram so common that walking the list's order fills the page sooner).
    The counts only choose the gram, so a stale one costs speed, never a row."""
    grams = _grams_of(tv)
    fields = list(tv.view["search_fields"])
    if grams is None or len(q) < 3 or not fields or not set(fields) <= set(grams.info["fields"]):
        return None
    found = await _grams(conn, q)
    counts = await _counts(conn, grams, found, fields, cached_zeros=True)
    rarest = {f: _rarest(found, counts, f) for f in fields}
    if any(n >= RARE for n, _ in rarest.values()):
        return None
    ranges = or_(*[and_(grams.c.gram == g, grams.c.field == f) for f, (_, g) in rarest.items()])
    return tv.table.c[grams.info["pk"]].in_(select(grams.c.row_id).where(ranges))


async def contains_queries(conn: AsyncConnection, target: TableView, texts: list[str], q: str, like: Any,
                           value_col: Any, order: Callable[[str], list], want: int) -> list[Any]:
    """The contains query of each searched text field, in order (`like`: the `%q%` pattern); each
    returns the values in an order that a larger `want` only extends, so pages follow on."""
    tt = target.table
    grams = _grams_of(target)
    indexed = [n for n in texts if grams is not None and n in grams.info["fields"]]
    counts: dict = {}
    found: list[str] = []
    if indexed and len(q) >= 3:
        found = await _grams(conn, q)
        counts = await _counts(conn, grams, found, indexed)
    queries = []
    for n in texts:
        stmt = select(value_col.label("_value")).where(tt.c[n].like(like, escape="\\"))
        if n not in indexed or not found:
            queries.append(stmt.order_by(*order(n)).limit(want))
            continue
        rows, rarest = _rarest(found, counts, n)
        if rows == 0:
            continue  # a gram of the text is in no value of this field
        on = grams.c.row_id == tt.c[grams.info["pk"]]
        stmt = stmt.select_from(grams.join(tt, on)).where(grams.c.gram == rarest, grams.c.field == n)
        # MariaDB would read the table in its order of the field instead and join the grams to it.
        stmt = stmt.prefix_with("STRAIGHT_JOIN", dialect="mysql").prefix_with("STRAIGHT_JOIN", dialect="mariadb")
        queries.append(stmt.order_by(grams.c.row_id).limit(want))
    return queries
