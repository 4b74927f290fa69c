"""An import as a plan of rows, then its writes (django-import-export's dry run, as data).

Each row of a file is an insert (no id), an update of the row with its id (only the cells that
differ), a skip (nothing differs) or an error. Cells are what the app's export writes: code
fields name their target by text (a pipeline's name) or by value (its id), read-only columns are
ignored. A preview plans every row with the write's own checks and writes nothing; the checks run
in short read transactions, so no lock is held while a big file is looked at. The writes then go
through the same insert and update as a form, in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.catalog import Catalog, TableView
from app.core.context import AppContext
from app.crud.query import code_texts
from app.crud.rows import Actor, CrudError, jsonable
from app.crud.store import change_row, check_change, check_insert, insert_row, write_transaction
from app.crud.validate import validate_input

CHUNK = 200  # rows checked per short read transaction
ID_TITLES = ("编号", "id")


@dataclass
class Columns:
    """Where each writable field is in the file, where the id is, and what is left unread."""

    fields: dict[int, str]
    id_index: int | None
    ignored: list[str]


@dataclass
class RowPlan:
    """One row of the file: what would happen to it and why."""

    line: int
    action: str = "insert"  # insert | update | skip | error
    row_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # what the write gets
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (field, before, after)
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, errors: dict[str, str]) -> None:
        self.action, self.errors = "error", {**self.errors, **errors}


def map_columns(tv: TableView, header: list[str]) -> Columns:
    """Header cells → fields, by name or title in either language. The id and read-only columns
    (what an export adds: published version, created at) are known but not written; a header no
    field has is refused, since it is most likely a typo that would drop a column silently."""
    def keys(name: str) -> list[str]:
        f = tv.fields[name]
        return [k.strip().lower() for k in (name, f.title, *dict(f.titles).values())]

    known = {k: name for name in tv.fields for k in keys(name)}
    known |= {k: name for name in tv.view["form_fields"] for k in keys(name)}  # a writable field wins its title
    id_keys = {*keys(tv.pk), *ID_TITLES}
    fields: dict[int, str] = {}
    id_index, ignored, unknown = None, [], []
    for i, h in enumerate(header):
        key = (h or "").strip().lower()
        if not key:
            continue
        if key in id_keys and id_index is None:
            id_index = i
        elif known.get(key) in tv.view["form_fields"] and known[key] not in fields.values():
            fields[i] = known[key]
        elif key in known:
            ignored.append(h)
        else:
            unknown.append(h)
    if unknown:
        raise CrudError(400, "unknown columns: " + ", ".join(unknown))
    return Columns(fields, id_index, ignored)


def same(new: Any, old: Any) -> bool:
    """Whether a checked cell equals the stored value (0.12 is 0.120000; empty is NULL)."""
    if new in (None, "") or old in (None, ""):
        return new in (None, "") and old in (None, "")
    if isinstance(new, Decimal) or isinstance(old, Decimal):
        try:
            return Decimal(str(new)) == Decimal(str(old))
        except InvalidOperation:
            return False
    if isinstance(new, datetime) and isinstance(old, datetime):
        return new == old
    return str(jsonable(new)) == str(jsonable(old))


class Resolver:
    """Code cells → the values they name: the target's text (a pipeline's name; among targets of
    one name, the one under the row's other references, a step of the row's pipeline), else the
    cell itself (an id), which the write's reference check then vouches for."""

    def __init__(self, catalog: Catalog, tv: TableView, names: set[str]):
        self.tv = tv
        self.codes = [(c, catalog.tables[c.table]) for c in tv.spec.codes
                      if c.field in names and c.is_plain_table and c.table in catalog.tables]
        self.cache: dict[tuple, tuple[str | None, str | None]] = {}

    def siblings(self, code: Any, target: TableView) -> list[tuple[str, str]]:
        """(field of this row, field of the target) pairs naming the same table."""
        return [(mine.field, theirs.field) for theirs in target.spec.codes for mine in self.tv.spec.codes
                if mine.field != code.field and mine.table == theirs.table and mine.valuefield == theirs.valuefield]

    async def resolve(self, conn: AsyncConnection, data: dict[str, Any]) -> dict[str, str]:
        """Replace code cells of `data` by what they name; → errors for names that are ambiguous."""
        errors = {}
        for code, target in self.codes:
            text = str(data.get(code.field) or "").strip()
            if not text:
                continue
            pairs = [(m, t) for m, t in self.siblings(code, target) if data.get(m)]
            key = (code.field, text, tuple(str(data[m]) for m, _ in pairs))
            if key not in self.cache:
                self.cache[key] = await self._lookup(conn, code, target, text, pairs, data)
            value, error = self.cache[key]
            if error:
                errors[code.field] = error
            else:
                data[code.field] = value
        return errors

    async def _lookup(self, conn: AsyncConnection, code: Any, target: TableView, text: str,
                      pairs: list[tuple[str, str]], data: dict[str, Any]) -> tuple[str | None, str | None]:
        tt = target.table
        found = (await conn.execute(select(tt.c[code.valuefield], *[tt.c[t] for _, t in pairs])
                                    .where(tt.c[code.textfield] == text).limit(50))).all()
        found = [r for r in found if all(str(r[i + 1]) == str(data[m]) for i, (m, _) in enumerate(pairs))]
        if len(found) > 1:
            return None, f"{len(found)} rows of {target.title('en').lower()} are called {text!r}; use the id"
        return (str(found[0][0]) if found else text), None


class UniqueKeys:
    """Unique values within the file: a second row with the same code is an error before any write."""

    def __init__(self, tv: TableView):
        self.indexes = [ix.fields for ix in tv.spec.indexes if ix.unique]
        self.seen: dict[tuple, int] = {}

    def check(self, plan: RowPlan, row: dict[str, Any]) -> None:
        for fields in self.indexes:
            key = (fields, *(str(jsonable(row.get(n))) if row.get(n) is not None else None for n in fields))
            if None in key[1:]:
                continue
            if key in self.seen:
                plan.fail({fields[-1]: f"the same as row {self.seen[key]} of the file"})
            else:
                self.seen[key] = plan.line


async def plan_import(ctx: AppContext, tv: TableView, columns: Columns, rows: list[tuple[int, list[str]]], *,
                      check: bool) -> list[RowPlan]:
    """What the file would do, row by row; `check` runs the write's own checks too (the preview)."""
    ids = [cells[columns.id_index].strip() for _, cells in rows if columns.id_index is not None]
    existing = await _existing(ctx, tv, [i for i in ids if i])
    texts = await code_texts(ctx, tv, list(existing.values()))
    resolver = Resolver(ctx.catalog, tv, set(columns.fields.values()))
    keys, seen_ids, plans = UniqueKeys(tv), {}, []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        async with ctx.db.connect() as conn:  # one short read transaction: nothing is locked for long
            for line, cells in chunk:
                plan = RowPlan(line)
                row_id = cells[columns.id_index].strip() if columns.id_index is not None else ""
                before = existing.get(row_id) if row_id else None
                if row_id and row_id in seen_ids:
                    plan.fail({"": f"the id is also on row {seen_ids[row_id]} of the file"})
                elif row_id and before is None:
                    plan.fail({"": "no row has this id; leave the id empty to add a new row"})
                seen_ids.setdefault(row_id, line)
                if plan.action != "error":
                    await _plan_row(ctx, conn, tv, plan, columns, cells, before, texts, resolver, keys, check)
                plans.append(plan)
    return plans


async def _plan_row(ctx: AppContext, conn: AsyncConnection, tv: TableView, plan: RowPlan, columns: Columns,
                    cells: list[str], before: dict | None, texts: dict[str, dict[str, str]], resolver: Resolver,
                    keys: UniqueKeys, check: bool) -> None:
    shown = {name: cells[i] for i, name in columns.fields.items()}
    data = dict(shown)
    errors = await resolver.resolve(conn, data)
    if before is None:
        data = {k: v for k, v in data.items() if str(v).strip() != ""}  # empty: the default applies
        values, invalid = validate_input(tv, data, creating=True, strict=False)
        plan.data, plan.changes = data, [(n, "", shown[n]) for n in data]
    else:
        plan.action, plan.row_id = "skip", str(before[tv.pk])
        values, invalid = validate_input(tv, data, creating=False, strict=False)
        changed = [n for n, v in values.items() if not same(v, before.get(n))]
        if changed:
            plan.action, plan.data = "update", {n: data[n] for n in changed}
            plan.changes = [(n, _shown(before, n, texts), shown[n]) for n in changed]
    if errors or invalid:
        plan.fail(invalid | errors)
        return
    keys.check(plan, {**(before or {}), **values})
    if not check or plan.action not in ("insert", "update"):
        return
    try:
        if before is None:
            await check_insert(ctx, conn, tv, plan.data, strict=False)
        else:
            await check_change(ctx, conn, tv, before, plan.data, strict=False)
    except CrudError as exc:
        if exc.status >= 500:
            raise
        plan.fail(exc.errors or {"": exc.message})


def _shown(row: dict, name: str, texts: dict[str, dict[str, str]]) -> str:
    value = row.get(name)
    if value is None:
        return ""
    return texts.get(name, {}).get(str(value), str(jsonable(value)))


async def _existing(ctx: AppContext, tv: TableView, ids: list[str]) -> dict[str, dict]:
    """The rows the file names by id, read in chunks before any check."""
    out: dict[str, dict] = {}
    t = tv.table
    async with ctx.db.connect() as conn:
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            for r in await conn.execute(select(t).where(t.c[tv.pk].in_(unique[start:start + 500]))):
                out[str(r._mapping[tv.pk])] = dict(r._mapping)
    return out


async def apply_import(ctx: AppContext, tv: TableView, plans: list[RowPlan], actor: Actor, *,
                       all_or_nothing: bool) -> int:
    """Write the planned inserts and updates in one transaction; → rows written. A row the write
    refuses becomes an error; with `all_or_nothing`, then nothing is written."""
    if all_or_nothing and any(p.action == "error" for p in plans):
        return 0
    planned = [(p.action, p.errors) for p in plans]

    async def work(conn: AsyncConnection) -> int:
        for plan, (action, errors) in zip(plans, planned, strict=True):  # a retry starts from the plan
            plan.action, plan.errors = action, errors
        written = 0
        for plan in plans:
            if plan.action not in ("insert", "update"):
                continue
            try:
                if plan.action == "insert":
                    await insert_row(ctx, conn, tv, plan.data, actor, strict=False)
                else:
                    await change_row(ctx, conn, tv, plan.row_id, plan.data, actor, strict=False)
                written += 1
            except CrudError as exc:
                if exc.status >= 500:
                    raise
                plan.fail(exc.errors or {"": exc.message})
        if all_or_nothing and any(p.action == "error" for p in plans):
            raise _NothingWritten
        return written

    try:
        return await write_transaction(ctx, work)
    except _NothingWritten:
        return 0


class _NothingWritten(Exception):
    """An all-or-nothing import with a refused row: roll back everything written so far."""
