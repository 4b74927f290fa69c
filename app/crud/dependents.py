"""What depends on rows about to be deleted, found from the specs' codes (Django admin's delete
collector, as data): which rows go with them, which keep them, and what to do instead.

A code with `on_delete: cascade` is a part of its row (a pipeline's steps): those rows are deleted
with it, and what depends on them is looked at in turn. Any other code is a reference that
outlives its target (a usage row naming its pipeline and distributor): a row such a reference
points at is not deleted, because the reference would then name nothing and history would read
differently. Modules add their own reasons (`rules.DELETE_RULES`, app/core/hooks.py).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg, title_of
from app.core.catalog import Catalog, TableView
from app.core.hooks import check_delete
from generators.spec import Code

MAX_DEPTH = 6  # cascades deeper than any real schema; stops a cycle of cascades
SAMPLE = 10  # rows shown by name per dependent table
RETIRED = ("archived", "closed", "disabled")  # status choices that take a row out of use, preferred first


@dataclass(frozen=True)
class Edge:
    """One step down a chain of references: `child.code.field` points at its parent's valuefield."""

    child: TableView
    code: Code

    @property
    def cascade(self) -> bool:
        return self.code.on_delete == "cascade"


@dataclass
class Dependent:
    """The rows of one table that point at the rows being deleted (directly or through parts)."""

    tv: TableView
    count: int
    cascade: bool
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DeletePlan:
    """A delete as it would happen: rows that go along, and rows keeping some ids from going."""

    dependents: list[Dependent]
    blocked: dict[str, list[str]]  # row id → why it stays

    @property
    def allowed(self) -> bool:
        return not self.blocked


def references(catalog: Catalog, tv: TableView) -> list[Edge]:
    """Every code of every table of the catalog that points at `tv`."""
    return [Edge(child, code) for child in catalog.tables.values() for code in child.spec.codes
            if code.is_plain_table and code.table == tv.name]


def chains(catalog: Catalog, tv: TableView) -> list[tuple[Edge, ...]]:
    """Every path of references into `tv`'s rows: down through cascades, ending at any reference."""
    out: list[tuple[Edge, ...]] = []

    def walk(parent: TableView, path: tuple[Edge, ...]) -> None:
        for edge in references(catalog, parent):
            if edge.child.name == tv.name or any(e.child.name == edge.child.name for e in path):
                continue
            chain = (*path, edge)
            out.append(chain)
            if edge.cascade and len(chain) < MAX_DEPTH:
                walk(edge.child, chain)

    walk(tv, ())
    return out


def _reached(tv: TableView, chain: tuple[Edge, ...], ids: list[str]) -> Any:
    """The condition on the chain's last table: its rows that lead up to one of `ids`."""
    parent, where = tv, tv.table.c[tv.pk].in_(ids)
    for edge in chain:
        ct = edge.child.table
        where = ct.c[edge.code.field].in_(select(parent.table.c[edge.code.valuefield]).where(where))
        parent = edge.child
    return where


async def _per_row(conn: AsyncConnection, tv: TableView, chain: tuple[Edge, ...], ids: list[str]) -> dict[str, int]:
    """How many rows at the chain's end lead up to each of `ids` (one grouped join)."""
    top = tv.table.alias("top")
    joined, parent = top, top
    for i, edge in enumerate(chain):
        child = edge.child.table.alias(f"c{i}")
        joined = joined.join(child, child.c[edge.code.field] == parent.c[edge.code.valuefield])
        parent = child
    stmt = (select(top.c[tv.pk], func.count()).select_from(joined)
            .where(top.c[tv.pk].in_(ids)).group_by(top.c[tv.pk]))
    return {str(k): n for k, n in (await conn.execute(stmt)).all()}


def retire_choice(tv: TableView) -> tuple[str, str] | None:
    """(field, value) that takes a row out of use instead of deleting it: a writable `status`
    choice of RETIRED, else None."""
    f = tv.fields.get("status")
    if f is None or "status" not in tv.view["form_fields"]:
        return None
    values = {c.value for c in f.choices}
    return next((("status", v) for v in RETIRED if v in values), None)


async def delete_plan(conn: AsyncConnection, catalog: Catalog, tv: TableView,
                      rows: list[dict[str, Any]]) -> DeletePlan:
    """The dependents of `rows` by table (counted together, first rows by name), and each row
    that may not be deleted with its reasons: references that outlive it, and module rules."""
    ids = [str(r[tv.pk]) for r in rows]
    by_table: dict[tuple[str, bool], list[Any]] = defaultdict(list)
    keepers: list[tuple[Edge, ...]] = []
    for chain in chains(catalog, tv):
        last = chain[-1]
        by_table[(last.child.name, last.cascade)].append(_reached(tv, chain, ids))
        if not last.cascade:
            keepers.append(chain)
    dependents = []
    for (name, cascade), conds in by_table.items():
        dtv = catalog.tables[name]
        where = or_(*conds)
        count = (await conn.execute(select(func.count()).select_from(dtv.table).where(where))).scalar_one()
        if count:
            sample = (await conn.execute(select(dtv.table).where(where).limit(SAMPLE))).all()
            dependents.append(Dependent(dtv, count, cascade, [dict(r._mapping) for r in sample]))
    counted = {(d.tv.name, d.cascade) for d in dependents}
    blocked: dict[str, list[str]] = defaultdict(list)
    for chain in keepers:
        if (chain[-1].child.name, False) not in counted:
            continue
        last = chain[-1]
        for row_id, n in (await _per_row(conn, tv, chain, ids)).items():
            blocked[row_id].append(Msg("{n} {table} rows refer to it ({column})", n=n,
                                       table=title_of(last.child.title),
                                       column=f"{last.child.name}.{last.code.field}"))
    for row in rows:
        blocked[str(row[tv.pk])] += await check_delete(conn, tv, row)
    return DeletePlan(dependents, {k: v for k, v in blocked.items() if v})
