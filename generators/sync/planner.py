"""Planning a sync: the specs' tables against the live ones, one step per difference.

Safe changes (new tables, columns, indexes, widened types, relaxed NOT NULL) become steps.
Destructive ones (dropped columns, narrowed or changed types, NULL → NOT NULL, changed indexes)
are only listed as skipped unless `allow_destructive`, and even then the plan first counts the
data at risk. Every statement is compiled by SQLAlchemy for the engine's own dialect; what a
dialect does differently comes from its `SyncDialect`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKeyConstraint, Table, and_, func, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import AddConstraint, CreateColumn, CreateIndex, DropConstraint, DropIndex

from generators.ddl import comment_statements, table_statements
from generators.schema import build_metadata
from generators.spec import TableSpec
from generators.sync.dialects import SyncDialect, sync_dialect
from generators.sync.grams import plan_gram_triggers
from generators.sync.live import at_risk_where, classify, read_live, type_str, why_safe
from generators.sync.model import Plan, Skipped, Step


@dataclass
class _Ctx:
    conn: Connection
    dialect: Dialect
    rules: SyncDialect
    allow_destructive: bool
    plan: Plan

    def sql(self, element: Any, **kw: Any) -> str:
        """Compile a DDL element for this engine, shown (and later run) with single `%`."""
        text = str(element.compile(dialect=self.dialect, **kw)).strip()
        return text.replace("%%", "%") if self.dialect.identifier_preparer._double_percents else text

    def table(self, table: Table) -> str:
        return self.dialect.identifier_preparer.format_table(table)

    def col(self, column: Column) -> str:
        return self.dialect.identifier_preparer.format_column(column)

    def count(self, table: Table, where: Any = None) -> int:
        query = select(func.count()).select_from(table)
        return int(self.conn.execute(query if where is None else query.where(where)).scalar() or 0)

    def destructive(self, step: Step, risk: Any) -> None:
        """Add `step` if allowed, else list it; either way with its data at risk, counted now,
        before anything runs."""
        risk = risk() if callable(risk) else risk
        if self.allow_destructive:
            step.destructive, step.risk = True, risk
            self.plan.steps.append(step)
        else:
            self.plan.skipped.append(Skipped(step.description, "destructive", risk, sql=step.sql))

    def unsupported(self, description: str, reason: str) -> None:
        self.plan.skipped.append(Skipped(description, "unsupported", reason))


def _coerce(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Seed values come from JSON/Excel as text: give date, time and number columns real values."""
    out = {}
    for key, value in row.items():
        ptype = table.c[key].type.python_type if value is not None else None
        if isinstance(value, str) and ptype in (datetime, date, time, int, Decimal, float):
            value = ptype.fromisoformat(value) if ptype in (datetime, date, time) else ptype(value)
        out[key] = value
    return out


def _create_table(ctx: _Ctx, table: Table) -> None:
    ctx.plan.steps.append(Step(f"create table {table.name} ({len(table.columns)} columns, "
                               f"{len(table.indexes)} indexes)", table_statements(table, ctx.dialect, ctx.sql),
                               why="a new table: there are no rows yet"))


def _seed(ctx: _Ctx, table: Table, spec: TableSpec) -> None:
    if not spec.data:
        return
    rows = [_coerce(table, dict(r)) for r in spec.data]
    ins = table.insert()
    try:
        shown = [ctx.sql(ins.values(r), compile_kwargs={"literal_binds": True}) for r in rows]
    except Exception:  # noqa: BLE001 - a value without a literal form: show the parametrised insert
        shown = [ctx.sql(ins) + f"  -- {len(rows)} rows"]
    ctx.plan.steps.append(Step(f"insert {len(rows)} seed row(s) into {table.name}", shown,
                               insert=(table, rows), why="rows for the table this plan creates"))


def _own_constraint(table: Table, col: Column, cons: Any) -> bool:
    """The CHECK (choices) or FOREIGN KEY the schema compiler made for `col` alone."""
    return (isinstance(cons, CheckConstraint) and cons.name == f"ck_{table.name}_{col.name}") or (
        isinstance(cons, ForeignKeyConstraint) and list(cons.column_keys) == [col.name])


def _add_column(ctx: _Ctx, table: Table, live: Table, col: Column) -> None:
    where = f"{table.name}.{col.name}"
    if col.primary_key:
        ctx.unsupported(f"add primary-key column {where}", "a primary key change needs a table rebuild")
        return
    note = ""
    if not col.nullable and col.server_default is None and ctx.count(live):
        col.nullable = True  # the metadata is ours and throwaway
        note = (" — added NULL-able: the table has rows and the spec gives no default; fill it, then "
                "sync with --allow-destructive to make it NOT NULL")
    blocker = ctx.rules.add_column_blocker(col, lambda: bool(ctx.count(live)))
    if blocker:
        ctx.unsupported(f"add column {where}", blocker)
        return
    stmts = [f"ALTER TABLE {ctx.table(table)} ADD COLUMN {ctx.sql(CreateColumn(col))}"]
    stmts += comment_statements(ctx.dialect, ctx.sql, [col])
    for cons in table.constraints:
        if not _own_constraint(table, col, cons):
            continue
        if ctx.rules.constraint_blocker:
            ctx.unsupported(f"add constraint {cons.name} for new column {where}", ctx.rules.constraint_blocker)
        else:
            stmts.append(ctx.sql(AddConstraint(cons)))
    ctx.plan.steps.append(Step(f"add column {where} {ctx.sql(col.type)}{note}", stmts,
                               why="a new column: no stored value changes"))


def _drop_column(ctx: _Ctx, live: Table, col: Column) -> None:
    where = f"{live.name}.{col.name}"
    in_check = [c for c in live.constraints if isinstance(c, CheckConstraint)
                and re.search(rf"\b{re.escape(col.name)}\b", str(c.sqltext))]
    fks = [c for c in live.foreign_key_constraints if col.name in c.column_keys]
    blocker = ctx.rules.drop_column_blocker(live, col, in_check + fks)
    if blocker:
        ctx.unsupported(f"drop column {where}", blocker)
        return
    stmts = [ctx.sql(DropIndex(ix)) for ix in sorted(live.indexes, key=lambda i: i.name) if col.name in ix.c]
    if ctx.rules.drops_dependents_first:
        stmts += [ctx.sql(DropConstraint(c)) for c in fks + in_check if c.name]
    stmts.append(f"ALTER TABLE {ctx.table(live)} DROP COLUMN {ctx.col(col)}")

    def risk() -> str:
        rows, values = ctx.count(live), ctx.count(live, col.isnot(None))
        return f"{values} non-null value(s) in {rows} row(s) will be lost"

    ctx.destructive(Step(f"drop column {where}", stmts), risk)


def _alter_column(ctx: _Ctx, table: Table, live: Table, col: Column) -> None:
    lcol = live.c[col.name]
    new, old = type_str(col.type, ctx.dialect, ctx.rules), type_str(lcol.type, ctx.dialect, ctx.rules)
    kind = None if new == old else classify(old, new)
    tighten = lcol.nullable and not col.nullable
    relax = not lcol.nullable and col.nullable
    if kind is None and not tighten and not relax:
        return
    where = f"{table.name}.{col.name}"
    parts = ([f"{old} → {new} ({kind})"] if kind else []) + (["NULL → NOT NULL"] if tighten else []) + (
        ["NOT NULL → NULL"] if relax else [])
    description = f"alter column {where}: {', '.join(parts)}"
    if ctx.rules.alter_blocker:
        ctx.unsupported(description, ctx.rules.alter_blocker)
        return
    step = Step(description, ctx.rules.alter_statements(
        ctx.table(table), ctx.col(col), ctx.sql(CreateColumn(col)), ctx.sql(col.type), kind, tighten, relax))
    if kind in (None, "widen") and not tighten:
        step.why = "; ".join(([why_safe(old, new)] if kind else []) + (["NULL allowed: every value stays"]
                                                                       if relax else []))
        ctx.plan.steps.append(step)
        return

    def risk() -> str:
        found = []
        if kind not in (None, "widen"):
            n = ctx.count(live, and_(lcol.isnot(None), at_risk_where(ctx.rules, lcol, kind, old, new)))
            exact = kind == "narrow" or new.startswith("DECIMAL(")
            found.append(f"{n} value(s) that {new} cannot hold unchanged (they are converted, "
                         f"rounded, truncated or make the change fail)" if exact
                         else f"{n} non-null value(s) to convert to {new}")
        if tighten:
            nulls = ctx.count(live, lcol.is_(None))
            found.append(f"{nulls} NULL value(s) (the change fails while they remain)")
        return f"{ctx.count(live)} row(s); " + "; ".join(found)

    ctx.destructive(step, risk)


def _indexes(ctx: _Ctx, table: Table, live: Table, dropped: set[str]) -> None:
    have = {ix.name: ix for ix in live.indexes}
    wanted = {ix.name: ix for ix in table.indexes}
    for name, ix in sorted(wanted.items()):
        cols = [c.name for c in ix.columns]
        old = have.get(name)
        if old is None:
            ctx.plan.steps.append(Step(f"create index {name} on {table.name} ({', '.join(cols)})",
                                       [ctx.sql(CreateIndex(ix))], why="an index holds no data of its own"))
        elif [c.name for c in old.columns] != cols or bool(old.unique) != bool(ix.unique):
            ctx.destructive(Step(f"recreate index {name} on {table.name} as "
                                 f"{'unique ' if ix.unique else ''}({', '.join(cols)})",
                                 [ctx.sql(DropIndex(old)), ctx.sql(CreateIndex(ix))]),
                            "no data (an index only); a unique index fails if duplicates exist")
    for name, old in sorted(have.items()):
        # Only indexes named like ours (`<table>_...`, see `index_name`); others are not ours to drop.
        if name not in wanted and name.startswith(f"{table.name}_") and not (
                {c.name for c in old.columns} & dropped):
            ctx.destructive(Step(f"drop index {name} on {table.name} (not in the spec)",
                                 [ctx.sql(DropIndex(old))]), "no data (an index only)")


def _plan(conn: Connection, specs: list[TableSpec], allow_destructive: bool) -> Plan:
    rules = sync_dialect(conn.dialect.name)
    ctx = _Ctx(conn, conn.dialect, rules, allow_destructive, Plan(rules.name))
    metadata = build_metadata(specs)
    by_name = {s.name: s for s in specs}
    existing, live = read_live(conn, metadata, set(by_name))
    ordered = [t for t in metadata.sorted_tables if not t.info.get("stub")]
    for table in ordered:
        if table.name not in existing:
            _create_table(ctx, table)
    for table in ordered:
        if table.name not in existing and table.name in by_name:
            _seed(ctx, table, by_name[table.name])
    for table in ordered:
        if table.name not in existing or table.name not in by_name:
            continue  # not there yet, or a side table of the compiler's (positions, grams)
        lt = live.tables[table.name]
        for col in table.columns:
            if col.name not in lt.c:
                _add_column(ctx, table, lt, col)
            else:
                _alter_column(ctx, table, lt, col)
        dropped = {c.name for c in lt.columns if c.name not in table.c}
        _indexes(ctx, table, lt, dropped)
        for name_ in sorted(dropped):
            _drop_column(ctx, lt, lt.c[name_])
    plan_gram_triggers(conn, metadata, existing, ctx.plan)
    # Safe steps first: a destructive step that the database refuses must not hold them back.
    ctx.plan.steps.sort(key=lambda s: s.destructive)
    return ctx.plan


async def plan_sync(engine: AsyncEngine, specs: Iterable[TableSpec], allow_destructive: bool = False) -> Plan:
    """Compare the specs with the live schema; run nothing but reads (row counts for the risk)."""
    specs = list(specs)
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: _plan(c, specs, allow_destructive))
