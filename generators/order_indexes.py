"""Indexes every list order relies on: the default sort and each sortable column, primary key last.

A list page reads `ORDER BY <sort columns>, <pk> LIMIT n` and pages on by a cursor of those
values (`app.crud.paging`); without an index of exactly that key the database reads and sorts
the whole table for every page (MariaDB: `type ALL, Using filesort`). So the compiler guarantees
one per order a list can be shown in: for the view's default `sort` and for every `sortable`
column, an index `(columns..., pk)` — one index serves both directions, the database reads it
backwards — unless an index of the table already starts with that key. They are named
`<table>_ord_<columns>` and DDL, `db sync` and the runtime's tables get them the same way.

A key the databases cannot index (a text or binary column, or more than InnoDB's 3,072 bytes)
is refused when named (the default `sort`, or the view's own `sortable` list); a column that is
sortable only by default (every list column) just is not sortable then.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Index, MetaData, Table

from generators.spec import Field, SpecError, TableSpec

MAX_KEY_BYTES = 3072
"""InnoDB's longest index key (DYNAMIC rows); utf8mb4 text counts 4 bytes a character."""

OrderKey = tuple[tuple[str, bool], ...]
"""An order as an index key: (column, descending) pairs, the primary key last."""


def order_key(spec: TableSpec, sort: list[str]) -> OrderKey:
    """`sort` ("-a", "b") as the query orders it: the primary key appended as the tiebreaker in
    the first column's direction (`app.crud.query.order_by` builds the same)."""
    key = [(part.lstrip("-"), part.startswith("-")) for part in sort]
    pk = spec.primary[0]
    if pk not in {name for name, _ in key}:
        key.append((pk, key[0][1] if key else True))
    return tuple(key)


def normal(key: OrderKey) -> OrderKey:
    """The key with its first column ascending: an order and its reverse need the same index."""
    flip = bool(key) and key[0][1]
    return tuple((name, desc != flip) for name, desc in key)


def key_bytes(f: Field) -> int | None:
    """How many bytes `f` takes in an index key, None when it cannot be in one at all."""
    if f.type in ("text", "bin"):
        return None
    if f.type in ("str", "char"):
        return 4 * (f.length or 255)
    return 16 if f.type == "decimal" else 8


def why_unindexable(spec: TableSpec, key: OrderKey) -> str | None:
    """Why no index can hold `key`, or None when one can."""
    total = 0
    for name, _ in key:
        size = key_bytes(spec.field(name))
        if size is None:
            return f"{name} is {spec.field(name).type}, which no index can order"
        total += size
    if total > MAX_KEY_BYTES:
        return f"the key is {total} bytes, more than the {MAX_KEY_BYTES} an index key may hold"
    return None


def index_name_for(table: str, key: OrderKey) -> str:
    """`<table>_ord_<columns but the pk>`, shortened with a hash past 60 characters (the limits
    are 64 in MariaDB, 63 in PostgreSQL)."""
    name = f"{table}_ord_" + "_".join(n for n, _ in key[:-1] or key)
    if len(name) > 60:
        name = name[:51] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def view_orders(spec: TableSpec, view: dict[str, Any]) -> list[OrderKey]:
    """Every order the view's list can be shown in, normalised, without duplicates: the default
    sort, then each sortable column. An internal table has no list page, so no orders."""
    if view.get("internal"):
        return []
    keys = [order_key(spec, view["sort"])] + [order_key(spec, [name]) for name in view["sortable"]]
    out: list[OrderKey] = []
    for key in map(normal, keys):
        if key not in out:
            out.append(key)
    return out


def order_problems(spec: TableSpec, view: dict[str, Any], source: str) -> list[SpecError]:
    """The view's orders no index can serve, each naming the index it would need."""
    problems = []
    for key in view_orders(spec, view):
        reason = why_unindexable(spec, key)
        if reason:
            columns = ", ".join(n + (" DESC" if d else "") for n, d in key)
            problems.append(SpecError(
                source, spec.name, key[0][0],
                f"list order ({columns}) needs index {index_name_for(spec.name, key)}, which cannot be "
                f"built: {reason}", fix="sort by another field, or leave this one out of sortable"))
    return problems


def _served(table: Table) -> set[OrderKey]:
    """The normalised keys of every prefix of the table's indexes (the primary key's too)."""
    keys: set[OrderKey] = set()
    sources = [list(ix.expressions) for ix in table.indexes] + [list(table.primary_key.columns)]
    for exprs in sources:
        cols: list[tuple[str, bool]] = []
        for e in exprs:
            element = getattr(e, "element", e)
            cols.append((getattr(element, "name", str(element)), e is not element))
            keys.add(normal(tuple(cols)))
    return keys


def add_order_indexes(specs: Iterable[TableSpec], views: dict[str, dict[str, Any]], metadata: MetaData) -> None:
    """Add `<table>_ord_...` to the tables in `metadata` for each order of their views that no
    index serves yet (keys no index can hold are left to `order_problems` to refuse)."""
    for spec in specs:
        table = metadata.tables.get(spec.name)
        view = views.get(spec.name)
        if table is None or view is None or table.info.get("stub"):
            continue
        served = _served(table)
        for key in view_orders(spec, view):
            if key in served or why_unindexable(spec, key):
                continue
            Index(index_name_for(spec.name, key), *[table.c[n].desc() if d else table.c[n] for n, d in key])
            served |= {key[:i] for i in range(1, len(key) + 1)}

