"""What a picker offers for a lookup (code) field: ranked matches, a page at a time, fast at scale.

A keystroke asks for the rows of the looked-up table whose value or searched fields (the code's
`search`, else its text) match what was typed, ranked: an exact match first (the id, a code),
then fields that start with it, then fields that contain it. Each rank is its own query, stopped
as soon as the page is full, so the usual case (a prefix of a code) is a few index range reads
(the compiler guarantees the indexes, `generators.lookup_indexes`). The contains rank runs only
when nothing is or starts with what was typed, or for "more results": an index scan, or where the
spec asks for it a read of the rows that have the text's rarest trigram (`app.crud.lookup_contains`).
Each option says what it belongs to when the code names an `owner` (a step, its pipeline).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from app.core.catalog import TableView
from app.core.context import AppContext
from app.crud.lookup_contains import contains_queries
from app.crud.rows import CrudError
from app.crud.validate import Invalid, coerce
from generators.spec import Code

PAGE = 20
MAX_PAGE = 50
MAX_DEPTH = 500
"""The deepest offset "more results" pages to: past it, typing more narrows faster than paging."""


def lookup_target(ctx: AppContext, tv: TableView, field_name: str) -> tuple[Code, TableView]:
    """The code of `field_name` and the table it reads from; 404 for a field that has no lookup."""
    code = tv.spec.code_for(field_name) if field_name in tv.view["lookups"] else None
    target = ctx.catalog.tables.get(code.table) if code and code.is_plain_table else None
    if code is None or target is None:
        raise CrudError(404, "no lookup for this field")
    return code, target


def _like(q: str, prefix_only: bool) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%" if prefix_only else "%" + escaped + "%"


def _order(target: TableView, name: str, value_col: Any) -> list:
    """The field's order, ties broken by the value unless the field is unique on its own: then
    the index alone gives the order and a prefix read stops at the page's end."""
    unique = any(ix.unique and ix.fields == (name,) for ix in target.spec.indexes)
    return [target.table.c[name]] if unique else [target.table.c[name], value_col]


def _texts(code: Code, target: TableView) -> list[str]:
    return [n for n in code.search_fields if target.fields[n].is_text]


def _ranked_queries(code: Code, target: TableView, q: str, cols: list, want: int) -> list[Any]:
    """Exact, then prefix per searched field (in the code's order); contains is `contains_queries`.

    A contains query reads only the field and the value; the rows it finds are read by value
    afterwards."""
    tt = target.table
    value_col = tt.c[code.valuefield]
    texts = _texts(code, target)
    exact = [tt.c[n] == q for n in texts]
    try:
        exact.append(value_col == coerce(target.fields[code.valuefield], q))
    except Invalid:
        pass
    queries = [select(*cols).where(or_(*exact)).limit(want)] if exact else []
    return queries + [select(*cols).where(tt.c[n].like(_like(q, True), escape="\\"))
                      .order_by(*_order(target, n, value_col)).limit(want) for n in texts]


async def lookup_options(ctx: AppContext, tv: TableView, field_name: str, q: str,
                         limit: int = PAGE, offset: int = 0) -> dict[str, Any]:
    """One page of options: `{"options": [{value, text, detail, label, owner}], "more": bool}`."""
    code, target = lookup_target(ctx, tv, field_name)
    tt = target.table
    value_col = tt.c[code.valuefield]
    shown = list(dict.fromkeys([code.textfield, *code.search_fields]))
    cols = [value_col.label("_value"), *[tt.c[n] for n in shown if n != code.valuefield]]
    if code.owner and code.owner not in shown:
        cols.append(tt.c[code.owner])
    q = q.strip()
    want = offset + limit + 1
    maybe_more = False
    async with ctx.db.connect() as conn:
        if not q:
            stmt = select(*cols).order_by(tt.c[code.textfield], value_col).offset(offset).limit(limit + 1)
            rows = [r._mapping for r in (await conn.execute(stmt)).all()]
        else:
            found: dict[Any, Any] = {}
            contained: list[Any] = []
            for stmt in _ranked_queries(code, target, q, cols, want):
                if len(found) >= want:
                    break  # the page is full
                for r in (await conn.execute(stmt)).all():
                    found.setdefault(r._mapping["_value"], r._mapping)
            if len(found) < want and found and (offset == 0 or str(q) in map(str, found)):
                # Something is or starts with what was typed: the search for what merely contains
                # it waits for "more results" (never after an exact id).
                maybe_more = offset == 0 and str(q) not in map(str, found)
            elif len(found) < want:
                for stmt in await contains_queries(conn, target, _texts(code, target), q, _like(q, False),
                                                   value_col, lambda n: _order(target, n, value_col), want):
                    if len(found) + len(contained) >= want:
                        break  # the page is full
                    contained += [r[0] for r in (await conn.execute(stmt)).all()
                                  if r[0] not in found and r[0] not in contained]
            if contained:  # in the order found, so "more results" pages follow on
                read = {r._mapping["_value"]: r._mapping
                        for r in (await conn.execute(select(*cols).where(value_col.in_(contained)))).all()}
                for value in contained:
                    found.setdefault(value, read[value])
            rows = list(found.values())[offset:offset + limit + 1]
        owners = await _owner_labels(ctx, conn, code, target, rows[:limit])
    options = [_option(code, r, owners) for r in rows[:limit]]
    return {"options": options, "more": len(rows) > limit or maybe_more}


async def lookup_selected(ctx: AppContext, tv: TableView, field_name: str, value: Any) -> dict[str, Any] | None:
    """The option of a value already chosen (what a form or filter shows for it), or None."""
    code, target = lookup_target(ctx, tv, field_name)
    tt = target.table
    try:
        value = coerce(target.fields[code.valuefield], value)
    except Invalid:
        return None
    shown = list(dict.fromkeys([code.textfield, *code.search_fields]))
    cols = [tt.c[code.valuefield].label("_value"), *[tt.c[n] for n in shown if n != code.valuefield]]
    if code.owner and code.owner not in shown:
        cols.append(tt.c[code.owner])
    async with ctx.db.connect() as conn:
        row = (await conn.execute(select(*cols).where(tt.c[code.valuefield] == value))).first()
        if row is None:
            return None
        owners = await _owner_labels(ctx, conn, code, target, [row._mapping])
    return _option(code, row._mapping, owners)


def _text(row: Any, name: str, code: Code) -> str:
    value = row["_value"] if name == code.valuefield else row[name]
    return "" if value is None else str(value)


def _option(code: Code, row: Any, owners: dict[str, str]) -> dict[str, Any]:
    text = _text(row, code.textfield, code)
    others = [v for v in dict.fromkeys(_text(row, n, code) for n in code.search_fields) if v and v != text]
    detail = " · ".join(others)
    owner = owners.get(str(row[code.owner])) if code.owner and row[code.owner] is not None else None
    return {"value": str(row["_value"]), "text": text, "detail": detail,
            "label": f"{text} ({detail})" if detail else text, "owner": owner or ""}


async def _owner_labels(ctx: AppContext, conn: Any, code: Code, target: TableView, rows: list) -> dict[str, str]:
    """Owner value → its label (searched fields then text: `flow-12 · Flow 12`), one query."""
    owner_code = target.spec.code_for(code.owner) if code.owner else None
    owner_table = ctx.catalog.tables.get(owner_code.table) if owner_code and owner_code.is_plain_table else None
    values = {r[code.owner] for r in rows if code.owner and r[code.owner] is not None}
    if owner_code is None or owner_table is None or not values:
        return {}
    ot = owner_table.table
    names = list(dict.fromkeys([*owner_code.search_fields, owner_code.textfield]))
    result = await conn.execute(select(ot.c[owner_code.valuefield], *[ot.c[n] for n in names])
                                .where(ot.c[owner_code.valuefield].in_(values)))
    out = {}
    for r in result.all():
        parts = [str(r._mapping[n]) for n in names if r._mapping[n] not in (None, "")]
        out[str(r[0])] = " · ".join(dict.fromkeys(parts))
    return out
