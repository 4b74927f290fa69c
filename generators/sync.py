"""`pipeline-app db sync`: bring a live database up to the specs without losing data.

Safe changes (new tables, columns, indexes, widened types, relaxed NOT NULL) are planned and
applied. Destructive ones (dropped columns, narrowed or changed types, NULL → NOT NULL, changed
indexes) are only listed as skipped unless `allow_destructive`, and even then the plan first
counts the data at risk. Every statement is compiled by SQLAlchemy for the engine's own dialect;
types are compared as compiled type strings, normalised (see `norm_type`), because reflected type
classes differ per backend (MariaDB's INTEGER(11), PostgreSQL's NUMERIC) where the DDL does not.

A NOT NULL column without a default added to a table that has rows is added as NULL-able (and
the plan says so): the app keeps working, and the later NULL → NOT NULL is an ordinary
destructive step that reports how many NULLs still block it.
"""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    MetaData,
    Table,
    UniqueConstraint,
    and_,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import (
    AddConstraint,
    CreateColumn,
    CreateIndex,
    CreateTable,
    DropConstraint,
    DropIndex,
    SetColumnComment,
    SetTableComment,
)

from generators.schema import build_metadata
from generators.spec import TableSpec


class SyncError(RuntimeError):
    """A sync that cannot be planned or applied; the message is one line for the operator."""


@dataclass
class Step:
    """One change: a description for people, and the statements (or seed rows) that make it."""

    description: str
    statements: list[str] = field(default_factory=list)
    destructive: bool = False
    risk: str | None = None
    insert: tuple[Table, list[dict[str, Any]]] | None = None

    @property
    def sql(self) -> str:
        return ";\n".join(self.statements)


@dataclass
class Skipped:
    """A difference left alone: `kind` is "destructive" (needs the flag) or "unsupported"."""

    description: str
    kind: str
    reason: str = ""
    sql: str = ""


@dataclass
class Plan:
    dialect: str
    steps: list[Step] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.steps and not self.skipped

    @property
    def at_risk(self) -> list[str]:
        return [f"{s.description}: {s.risk}" for s in self.steps if s.destructive and s.risk]

    def render(self) -> str:
        if self.empty:
            return f"Schema is up to date ({self.dialect}): nothing to do."
        out = [f"Schema sync plan ({self.dialect}): {len(self.steps)} step(s)"]
        if self.at_risk:
            out.append("Data at risk (destructive steps, --allow-destructive given):")
            out += [f"  ! {line}" for line in self.at_risk]
        for n, step in enumerate(self.steps, 1):
            out.append(f"{n:3}. {'[DESTRUCTIVE] ' if step.destructive else ''}{step.description}")
            out += [f"       {line}" for line in step.sql.splitlines()]
        titles = (("destructive", "Skipped (destructive; run with --allow-destructive to apply):"),
                  ("unsupported", f"Skipped (not supported on {self.dialect} without a table rebuild):"))
        for kind, title in titles:
            items = [s for s in self.skipped if s.kind == kind]
            if items:
                out.append(title)
                out += [f"  - {s.description}" + (f" ({s.reason})" if s.reason else "") for s in items]
        return "\n".join(out)


# ---------------------------------------------------------------- type normalisation

_SYNONYMS = [
    (r"\bCHARACTER VARYING\b", "VARCHAR"), (r"\bCHARACTER\b", "CHAR"), (r"\bBPCHAR\b", "CHAR"),
    (r"\bNUMERIC\b", "DECIMAL"), (r"\bINTEGER\b", "INT"), (r"\bINT4\b", "INT"), (r"\bINT8\b", "BIGINT"),
    (r"\bINT2\b", "SMALLINT"), (r"\bDOUBLE PRECISION\b", "DOUBLE"), (r"\bFLOAT8\b", "DOUBLE"),
    (r"\bFLOAT4\b", "REAL"), (r"\bTIMESTAMP WITHOUT TIME ZONE\b", "TIMESTAMP"),
    (r"\bTIME WITHOUT TIME ZONE\b", "TIME"), (r"\bBOOL\b", "BOOLEAN"),
]


def norm_type(compiled: str, dialect: str) -> str:
    """A compiled type string in canonical form, so the spec's and the reflected type compare equal.

    Upper case, single spaces, no spaces inside parentheses; SQL synonyms folded (NUMERIC →
    DECIMAL, INTEGER → INT, CHARACTER VARYING → VARCHAR ...); MySQL display widths (INT(11)) and
    column charset/collation dropped; DECIMAL(p) = DECIMAL(p,0); and the float names made to mean
    their size: FLOAT is 4 bytes and DOUBLE 8 (PostgreSQL's bare FLOAT is 8 bytes, its REAL 4;
    MySQL's REAL is 8).
    """
    s = re.sub(r"\s+", " ", compiled.upper()).strip()
    s = re.sub(r" (CHARACTER SET|CHARSET|COLLATE) \w+", "", s)
    s = re.sub(r"\s*([(),])\s*", r"\1", s)
    for pattern, repl in _SYNONYMS:
        s = re.sub(pattern, repl, s)
    s = re.sub(r"\b(TINYINT|SMALLINT|MEDIUMINT|INT|BIGINT)\(\d+\)", r"\1", s)
    s = re.sub(r"^DECIMAL\((\d+)\)$", r"DECIMAL(\1,0)", s)
    if dialect == "postgresql":
        m = re.fullmatch(r"FLOAT(?:\((\d+)\))?", s)
        if m:
            s = "FLOAT" if m.group(1) and int(m.group(1)) <= 24 else "DOUBLE"
        s = "FLOAT" if s == "REAL" else s
    elif dialect in ("mysql", "mariadb") and s == "REAL":
        s = "DOUBLE"
    return s


_INT_RANGE = {"TINYINT": 2**7, "SMALLINT": 2**15, "MEDIUMINT": 2**23, "INT": 2**31, "BIGINT": 2**63}
_TEXT_SIZE = {"TINYTEXT": 2**8, "TEXT": 2**16, "MEDIUMTEXT": 2**24, "LONGTEXT": 2**32, "CLOB": 2**32}
_FLOAT_SIZE = {"FLOAT": 4, "DOUBLE": 8}
_BLOB_SIZE = {"TINYBLOB": 1, "BLOB": 2, "MEDIUMBLOB": 3, "LONGBLOB": 4, "BYTEA": 4}


def _parse(t: str) -> tuple[str, int | None, int | None]:
    m = re.fullmatch(r"([A-Z ]+?)(?:\((\d+)(?:,(\d+))?\))?", t)
    if not m:
        return t, None, None
    return m.group(1), *(int(g) if g else None for g in m.groups()[1:])


def _text_size(base: str, n: int | None) -> int | None:
    return n if base in ("VARCHAR", "CHAR") else _TEXT_SIZE.get(base)


def classify(old: str, new: str) -> str:
    """"widen" (no value can be lost), "narrow" (same family, smaller) or "retype" (other family)."""
    (ob, on, os_), (nb, nn, ns) = _parse(old), _parse(new)
    if ob in _INT_RANGE and nb in _INT_RANGE:
        return "widen" if _INT_RANGE[nb] >= _INT_RANGE[ob] else "narrow"
    if ob == nb == "DECIMAL" and None not in (on, nn):
        os_, ns = os_ or 0, ns or 0
        return "widen" if ns >= os_ and nn - ns >= on - os_ else "narrow"
    if ob in _FLOAT_SIZE and nb in _FLOAT_SIZE:
        return "widen" if _FLOAT_SIZE[nb] >= _FLOAT_SIZE[ob] else "narrow"
    if ob in _BLOB_SIZE and nb in _BLOB_SIZE:
        return "widen" if _BLOB_SIZE[nb] >= _BLOB_SIZE[ob] else "narrow"
    osize, nsize = _text_size(ob, on), _text_size(nb, nn)
    if osize and nsize:
        if nb == "CHAR" and ob != "CHAR":
            return "retype"  # CHAR pads: not a pure widening even when longer
        return "widen" if nsize >= osize else "narrow"
    return "retype"


# ---------------------------------------------------------------- planning

@dataclass
class _Ctx:
    conn: Connection
    dialect: Dialect
    name: str
    allow_destructive: bool
    plan: Plan

    def sql(self, element: Any) -> str:
        """Compile a DDL element for this engine, shown (and later run) with single `%`."""
        text = str(element.compile(dialect=self.dialect)).strip()
        return text.replace("%%", "%") if self.dialect.identifier_preparer._double_percents else text

    def table(self, table: Table) -> str:
        return self.dialect.identifier_preparer.format_table(table)

    def col(self, column: Column) -> str:
        return self.dialect.identifier_preparer.format_column(column)

    def count(self, table: Table, where: Any = None) -> int:
        query = select(func.count()).select_from(table)
        return int(self.conn.execute(query if where is None else query.where(where)).scalar() or 0)

    def destructive(self, step: Step, risk: Any) -> None:
        """Add `step` if allowed (computing its risk now, before anything runs), else list it."""
        if self.allow_destructive:
            step.destructive, step.risk = True, risk() if callable(risk) else risk
            self.plan.steps.append(step)
        else:
            self.plan.skipped.append(Skipped(step.description, "destructive", sql=step.sql))

    def unsupported(self, description: str, reason: str) -> None:
        self.plan.skipped.append(Skipped(description, "unsupported", reason))


def _comments(ctx: _Ctx, table: Table, columns: Iterable[Column]) -> list[str]:
    """PostgreSQL-style separate COMMENT statements, where the dialect does not inline them."""
    if ctx.dialect.inline_comments or not ctx.dialect.supports_comments:
        return []
    out = [ctx.sql(SetTableComment(table))] if table.comment and columns is table.columns else []
    return out + [ctx.sql(SetColumnComment(c)) for c in columns if c.comment]


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
    stmts = [ctx.sql(CreateTable(table))]
    stmts += [ctx.sql(CreateIndex(ix)) for ix in sorted(table.indexes, key=lambda i: i.name)]
    stmts += _comments(ctx, table, table.columns)
    ctx.plan.steps.append(Step(f"create table {table.name} ({len(table.columns)} columns, "
                               f"{len(table.indexes)} indexes)", stmts))


def _seed(ctx: _Ctx, table: Table, spec: TableSpec) -> None:
    if not spec.data:
        return
    rows = [_coerce(table, dict(r)) for r in spec.data]
    ins = table.insert()
    try:
        shown = [str(ins.values(r).compile(dialect=ctx.dialect, compile_kwargs={"literal_binds": True}))
                 for r in rows]
        if ctx.dialect.identifier_preparer._double_percents:
            shown = [x.replace("%%", "%") for x in shown]
    except Exception:  # noqa: BLE001 - a value without a literal form: show the parametrised insert
        shown = [ctx.sql(ins) + f"  -- {len(rows)} rows"]
    ctx.plan.steps.append(Step(f"insert {len(rows)} seed row(s) into {table.name}", shown,
                               insert=(table, rows)))


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
    default = str(getattr(getattr(col.server_default, "arg", None), "text", ""))
    if ctx.name == "sqlite" and default.upper().startswith("CURRENT_") and ctx.count(live):
        ctx.unsupported(f"add column {where}", "SQLite cannot add a column with a non-constant default "
                                               "to a table with rows")
        return
    stmts = [f"ALTER TABLE {ctx.table(table)} ADD COLUMN {ctx.sql(CreateColumn(col))}"]
    stmts += _comments(ctx, table, [col])
    for cons in table.constraints:
        mine = (isinstance(cons, CheckConstraint) and cons.name == f"ck_{table.name}_{col.name}") or (
            isinstance(cons, ForeignKeyConstraint) and list(cons.column_keys) == [col.name])
        if not mine:
            continue
        if ctx.name == "sqlite":
            ctx.unsupported(f"add constraint {cons.name} for new column {where}",
                            "SQLite cannot add constraints to an existing table; the app still validates")
        else:
            stmts.append(ctx.sql(AddConstraint(cons)))
    ctx.plan.steps.append(Step(f"add column {where} {ctx.sql(col.type)}{note}", stmts))


def _drop_column(ctx: _Ctx, live: Table, col: Column) -> None:
    where = f"{live.name}.{col.name}"
    in_check = [c for c in live.constraints if isinstance(c, CheckConstraint)
                and re.search(rf"\b{re.escape(col.name)}\b", str(c.sqltext))]
    fks = [c for c in live.foreign_key_constraints if col.name in c.column_keys]
    if ctx.name == "sqlite":
        if sqlite3.sqlite_version_info < (3, 35) or col.primary_key or in_check or fks or any(
                col.name in u.columns for u in live.constraints if isinstance(u, UniqueConstraint)):
            ctx.unsupported(f"drop column {where}", "it is part of a key or constraint, or SQLite < 3.35")
            return
    stmts = [ctx.sql(DropIndex(ix)) for ix in sorted(live.indexes, key=lambda i: i.name) if col.name in ix.c]
    if ctx.name == "mysql":  # PostgreSQL drops these with the column; MySQL refuses the drop first
        stmts += [ctx.sql(DropConstraint(c)) for c in fks + in_check if c.name]
    stmts.append(f"ALTER TABLE {ctx.table(live)} DROP COLUMN {ctx.col(col)}")

    def risk() -> str:
        rows, values = ctx.count(live), ctx.count(live, col.isnot(None))
        return f"{values} non-null value(s) in {rows} row(s) will be lost"

    ctx.destructive(Step(f"drop column {where}", stmts), risk)


def _at_risk_where(ctx: _Ctx, col: Column, kind: str, new: str) -> Any:
    """Rows whose value the new type cannot hold (or may alter), for the data-at-risk count."""
    base, n, s = _parse(new)
    if kind == "retype":
        return col.isnot(None)
    if base in _INT_RANGE:
        return or_(col < -_INT_RANGE[base], col >= _INT_RANGE[base])
    if base == "DECIMAL" and n is not None:
        return or_(func.abs(col) >= 10 ** (n - (s or 0)), col != func.round(col, s or 0))
    size = _text_size(base, n)
    if size:
        length = func.char_length if ctx.name == "mysql" else func.length
        return length(col) > size
    return col.isnot(None)


def _alter_column(ctx: _Ctx, table: Table, live: Table, col: Column) -> None:
    lcol = live.c[col.name]
    new, old = _type_str(ctx, col.type), _type_str(ctx, lcol.type)
    kind = None if new == old else classify(old, new)
    tighten = lcol.nullable and not col.nullable
    relax = not lcol.nullable and col.nullable
    if kind is None and not tighten and not relax:
        return
    where = f"{table.name}.{col.name}"
    parts = ([f"{old} → {new} ({kind})"] if kind else []) + (["NULL → NOT NULL"] if tighten else []) + (
        ["NOT NULL → NULL"] if relax else [])
    description = f"alter column {where}: {', '.join(parts)}"
    if ctx.name == "sqlite":
        ctx.unsupported(description, "SQLite changes a column's type or NULL-ability only by a table rebuild")
        return
    if ctx.name == "mysql":
        stmts = [f"ALTER TABLE {ctx.table(table)} MODIFY COLUMN {ctx.sql(CreateColumn(col))}"]
    else:
        head = f"ALTER TABLE {ctx.table(table)} ALTER COLUMN {ctx.col(col)}"
        stmts = []
        if kind:
            using = f" USING {ctx.col(col)}::{ctx.sql(col.type)}" if kind == "retype" else ""
            stmts.append(f"{head} TYPE {ctx.sql(col.type)}{using}")
        if tighten or relax:
            stmts.append(f"{head} {'SET' if tighten else 'DROP'} NOT NULL")
    step = Step(description, stmts)
    if kind in (None, "widen") and not tighten:
        ctx.plan.steps.append(step)
        return

    def risk() -> str:
        found = []
        if kind not in (None, "widen"):
            n = ctx.count(live, and_(lcol.isnot(None), _at_risk_where(ctx, lcol, kind, new)))
            found.append(f"{n} value(s) that {new} cannot hold unchanged (they are converted, "
                         f"truncated or make the change fail)" if kind != "retype"
                         else f"{n} non-null value(s) to convert to {new}")
        if tighten:
            nulls = ctx.count(live, lcol.is_(None))
            found.append(f"{nulls} NULL value(s) (the change fails while they remain)")
        return f"{ctx.count(live)} row(s); " + "; ".join(found)

    ctx.destructive(step, risk)


def _type_str(ctx: _Ctx, type_: Any) -> str:
    try:
        return norm_type(str(type_.compile(dialect=ctx.dialect)), ctx.name)
    except Exception:  # noqa: BLE001 - a type this dialect cannot name (SQLite's NullType): differs
        return f"UNKNOWN({type_!r})"


def _indexes(ctx: _Ctx, table: Table, live: Table, dropped: set[str]) -> None:
    have = {ix.name: ix for ix in live.indexes}
    wanted = {ix.name: ix for ix in table.indexes}
    for name, ix in sorted(wanted.items()):
        cols = [c.name for c in ix.columns]
        old = have.get(name)
        if old is None:
            ctx.plan.steps.append(Step(f"create index {name} on {table.name} ({', '.join(cols)})",
                                       [ctx.sql(CreateIndex(ix))]))
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
    name = {"mariadb": "mysql"}.get(conn.dialect.name, conn.dialect.name)
    ctx = _Ctx(conn, conn.dialect, name, allow_destructive, Plan(name))
    metadata = build_metadata(specs)
    by_name = {s.name: s for s in specs}
    existing = set(inspect(conn).get_table_names())
    for t in metadata.tables.values():
        if t.info.get("stub") and t.name not in existing:
            raise SyncError(f"a foreign key references table {t.name}, which is neither in the specs "
                            f"nor in the database")
    live = MetaData()
    live.reflect(bind=conn, only=[t for t in metadata.tables if t in existing and t in by_name])
    ordered = [t for t in metadata.sorted_tables if not t.info.get("stub")]
    for table in ordered:
        if table.name not in existing:
            _create_table(ctx, table)
    for table in ordered:
        if table.name not in existing:
            _seed(ctx, table, by_name[table.name])
    for table in ordered:
        if table.name not in existing:
            continue
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
    # Safe steps first: a destructive step that the database refuses must not hold them back.
    ctx.plan.steps.sort(key=lambda s: s.destructive)
    return ctx.plan


async def plan_sync(engine: AsyncEngine, specs: Iterable[TableSpec], allow_destructive: bool = False) -> Plan:
    """Compare the specs with the live schema; run nothing but reads (row counts for the risk)."""
    specs = list(specs)
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: _plan(c, specs, allow_destructive))


def one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


async def apply_sync(engine: AsyncEngine, plan: Plan) -> int:
    """Run the steps in order, each in its own transaction, stopping at the first failure.

    MySQL commits every DDL statement on its own, so a failed sync cannot be rolled back as a whole:
    the error says which step failed and how many ran before it; re-running sync plans the rest.
    """
    double = engine.dialect.identifier_preparer._double_percents
    async with engine.connect() as conn:
        for n, step in enumerate(plan.steps, 1):
            try:
                async with conn.begin():
                    if step.insert is not None:  # row by row: seed rows may name different columns
                        for row in step.insert[1]:
                            await conn.execute(step.insert[0].insert(), row)
                    else:
                        for sql in step.statements:
                            await conn.exec_driver_sql(sql.replace("%", "%%") if double else sql)
            except SQLAlchemyError as exc:
                raise SyncError(f"step {n} ({step.description}) failed: {one_line(exc)} "
                                f"[{n - 1} step(s) before it were applied]") from exc
    return len(plan.steps)
