"""An import as a plan of rows, then its writes (django-import-export's dry run, as data).

Each row of a file is an insert (no id), an update of the row with its id (only the cells that
differ), a skip (nothing differs) or an error. Cells are what the app's export writes: code
fields name their target by text (a pipeline's name) or by value (its id), read-only columns are
ignored. A preview plans every row with the write's own checks and writes nothing; the checks run
in short read transactions, so no lock is held while a big file is looked at. The writes then go
through the same checks and writes as a form, in one transaction. Both go CHUNK rows at a time
with one query per lookup (app/crud/import_checks.py), and only a chunk's plans are in memory.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg
from app.core.catalog import TableView
from app.core.context import AppContext
from app.core.hooks import hook
from app.crud.import_checks import IN_LIMIT, Pending, Resolver, chunk_errors, rule_errors
from app.crud.query import code_texts
from app.crud.rows import Actor, CrudError, jsonable
from app.crud.store import audit_many, new_values, write_change, write_insert, write_transaction
from app.crud.validate import validate_input

CHUNK = 500  # rows planned per short read transaction, with one query per lookup
TURN = 20  # rows planned between two turns of the event loop (a millisecond or two)
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
        raise CrudError(400, Msg("unknown columns: {columns}", columns=", ".join(unknown)))
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
                plan.fail({fields[-1]: Msg("the same as row {row} of the file", row=self.seen[key])})
            else:
                self.seen[key] = plan.line


@dataclass
class Tally:
    """What a file did, kept as it is planned: counts by action, every error, the first `shown`
    changes. Plans themselves go chunk by chunk, so a big file's memory is its cells, no more."""

    shown_max: int = 500
    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("insert", "update", "skip", "error"), 0))
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, message)
    shown: list[RowPlan] = field(default_factory=list)

    def add(self, plans: list[RowPlan]) -> None:
        for p in plans:
            self.rows += 1
            self.counts[p.action] += 1
            self.errors += [(p.line, name, msg) for name, msg in p.errors.items()] if p.action == "error" else []
            if p.action in ("insert", "update") and len(self.shown) < self.shown_max:
                self.shown.append(p)


Rows = list[tuple[int, tuple[str, ...]]]


async def plan_chunks(ctx: AppContext, tv: TableView, columns: Columns, rows: Rows, *, check: bool,
                      conn: AsyncConnection | None = None) -> AsyncIterator[list[RowPlan]]:
    """What the file would do, row by row, CHUNK rows at a time; `check` runs the write's own
    checks too (the preview). Each chunk is one short read transaction (or a part of the caller's
    `conn`) with one query per lookup, and the event loop gets its turns meanwhile."""
    resolver = Resolver(ctx.catalog, tv, set(columns.fields.values()))
    keys, seen_ids = UniqueKeys(tv), {}
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        if conn is None:
            async with ctx.db.connect() as own:  # nothing is locked for long
                plans = await _plan_chunk(ctx, own, tv, columns, chunk, resolver, keys, seen_ids, check)
        else:
            plans = await _plan_chunk(ctx, conn, tv, columns, chunk, resolver, keys, seen_ids, check)
        yield plans
        await asyncio.sleep(0)


async def _plan_chunk(ctx: AppContext, conn: AsyncConnection, tv: TableView, columns: Columns, chunk: Rows,
                      resolver: Resolver, keys: UniqueKeys, seen_ids: dict[str, int], check: bool) -> list[RowPlan]:
    ids = [cells[columns.id_index].strip() for _, cells in chunk] if columns.id_index is not None else []
    existing = await _existing(ctx, tv, [i for i in ids if i], conn)
    texts = await code_texts(ctx, tv, list(existing.values())) if existing else {}
    plans, todo = [], []
    for n, (line, cells) in enumerate(chunk):
        plan = RowPlan(line)
        row_id = ids[n] if ids else ""
        before = existing.get(row_id) if row_id else None
        if row_id and row_id in seen_ids:
            plan.fail({"": Msg("the id is also on row {row} of the file", row=seen_ids[row_id])})
        elif row_id and before is None:
            plan.fail({"": Msg("no row has this id; leave the id empty to add a new row")})
        seen_ids.setdefault(row_id, line)
        plans.append(plan)
        if plan.action != "error":
            todo.append((plan, cells, before))
    datas = [{name: cells[i] for i, name in columns.fields.items()} for _, cells, _ in todo]
    resolved = [dict(d) for d in datas]  # the cells as read stay for the diff
    found = await resolver.resolve(conn, resolved)
    pending: list[tuple[RowPlan, Pending]] = []
    for n, ((plan, _, before), data, shown, errors) in enumerate(zip(todo, resolved, datas, found, strict=True)):
        item = _plan_row(tv, plan, data, shown, before, texts, errors, keys)
        if item is not None:
            pending.append((plan, item))
        if n % TURN == TURN - 1:
            await asyncio.sleep(0)  # the loop's turn: no request waits for a whole chunk
    if check and pending:
        for (plan, _), errors in zip(pending, await chunk_errors(ctx, conn, tv, [i for _, i in pending]),
                                     strict=True):
            if errors:
                plan.fail(errors)
    return plans


def _plan_row(tv: TableView, plan: RowPlan, data: dict[str, Any], shown: dict[str, str], before: dict | None,
              texts: dict[str, dict[str, str]], errors: dict[str, str], keys: UniqueKeys) -> Pending | None:
    """Plan one row from its resolved cells; → what the write's checks still have to see, if anything."""
    if before is None:
        data = {k: v for k, v in data.items() if str(v).strip() != ""}  # empty: the default applies
        values, invalid = validate_input(tv, data, creating=True, strict=False)
        plan.data, plan.changes = data, [(n, "", shown[n]) for n in data]
    else:
        plan.action, plan.row_id = "skip", str(before[tv.pk])
        values, invalid = validate_input(tv, data, creating=False, strict=False)
        changed = [n for n, v in values.items() if not same(v, before.get(n))]
        values = {n: values[n] for n in changed}
        if changed:
            plan.action, plan.data = "update", {n: data[n] for n in changed}
            plan.changes = [(n, _shown(before, n, texts), shown[n]) for n in changed]
    if errors or invalid:
        plan.fail(invalid | errors)
        return None
    keys.check(plan, {**(before or {}), **values})
    return Pending(values, before) if plan.action in ("insert", "update") else None


def _shown(row: dict, name: str, texts: dict[str, dict[str, str]]) -> str:
    value = row.get(name)
    if value is None:
        return ""
    return texts.get(name, {}).get(str(value), str(jsonable(value)))


async def _existing(ctx: AppContext, tv: TableView, ids: list[str], conn: AsyncConnection | None = None
                    ) -> dict[str, dict]:
    """The stored rows of these ids (one query per IN_LIMIT ids), by id."""
    if not ids:
        return {}
    if conn is None:
        async with ctx.db.connect() as own:
            return await _existing(ctx, tv, ids, own)
    t, out = tv.table, {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), IN_LIMIT):
        for r in await conn.execute(select(t).where(t.c[tv.pk].in_(unique[start:start + IN_LIMIT]))):
            out[str(r._mapping[tv.pk])] = dict(r._mapping)
    return out


async def apply_import(ctx: AppContext, tv: TableView, columns: Columns, rows: Rows, actor: Actor, *,
                       all_or_nothing: bool, shown: int = 500) -> tuple[int, Tally]:
    """Plan and write the file CHUNK rows at a time; → (rows written, every row's outcome). A row
    the write refuses becomes an error. With `all_or_nothing` the file is previewed first (no
    transaction open), so one bad row writes nothing and every row is reported, then written in one
    transaction, which a row refused only at the write (a change meanwhile) rolls back. Without it,
    each chunk is its own short transaction: a write to a table the distributor context watches
    locks its change counter until commit (app/core/table_versions.py), and admissions wait for it."""
    if all_or_nothing:
        tally = Tally(shown)
        async for plans in plan_chunks(ctx, tv, columns, rows, check=True):
            tally.add(plans)
        if tally.counts["error"]:
            return 0, tally
    tally, written = Tally(shown), 0
    if not all_or_nothing:
        async for plans in plan_chunks(ctx, tv, columns, rows, check=False):  # each read on its own
            written += await _write_retried(ctx, tv, plans, actor)  # one chunk, then let go of its locks
            tally.add(plans)
        return written, tally
    async with ctx.db.connect() as conn:
        trans = await conn.begin()
        try:
            async for plans in plan_chunks(ctx, tv, columns, rows, check=False, conn=conn):
                written += await _write_chunk(ctx, conn, tv, plans, actor)
                tally.add(plans)
                if tally.counts["error"]:
                    await trans.rollback()
                    return 0, tally
            await trans.commit()
        except BaseException:
            await trans.rollback()
            raise
    return written, tally


async def _write_retried(ctx: AppContext, tv: TableView, plans: list[RowPlan], actor: Actor) -> int:
    """One chunk in its own transaction, run whole again on a conflict (deadlock, lock wait, a
    Galera certification failure): each attempt starts from the plans as they were."""
    saved = [(p.action, dict(p.errors), p.row_id) for p in plans]

    async def work(conn: AsyncConnection) -> int:
        for plan, (action, errors, row_id) in zip(plans, saved, strict=True):
            plan.action, plan.errors, plan.row_id = action, dict(errors), row_id
        return await _write_chunk(ctx, conn, tv, plans, actor)

    return await write_transaction(ctx, work)


async def _write_chunk(ctx: AppContext, conn: AsyncConnection, tv: TableView, chunk: list[RowPlan],
                       actor: Actor) -> int:
    """Check and write one chunk: the checks in one query each; new rows of a table without a save
    rule in one statement (with a rule, row by row, so each rule sees the rows before it); the
    audit rows in one statement per action."""
    chunk = [p for p in chunk if p.action in ("insert", "update")]
    befores = await _existing(ctx, tv, [p.row_id for p in chunk if p.action == "update"], conn)
    items: list[tuple[RowPlan, Pending]] = []
    for plan in chunk:
        before = befores.get(plan.row_id) if plan.action == "update" else None
        values, invalid = validate_input(tv, plan.data, creating=before is None, strict=False)
        if plan.action == "update" and before is None:
            invalid[""] = Msg('the row was deleted meanwhile')
        if invalid:
            plan.fail(invalid)
        else:
            items.append((plan, Pending(values, before)))
    ruled = bool(hook(tv.module, "rules").get(tv.name))
    done: list[tuple[RowPlan, dict | None]] = []
    batch: dict[tuple, list[tuple[RowPlan, dict]]] = {}
    for (plan, item), errors in zip(items, await chunk_errors(ctx, conn, tv, [i for _, i in items], rules=False),
                                    strict=True):
        try:
            errors = errors or (await rule_errors(conn, tv, item) if ruled else {})
            if errors:
                raise CrudError(422, Msg('invalid input'), errors)
            if item.before is None and not ruled:
                values = new_values(tv, item.values, actor)
                batch.setdefault(tuple(sorted(values)), []).append((plan, values))
                continue
            if item.before is None:
                plan.row_id = str(await write_insert(conn, tv, item.values, actor))
            else:
                await write_change(conn, tv, plan.row_id, item.values, actor)
            done.append((plan, item.before))
        except CrudError as exc:
            if exc.status >= 500:
                raise
            plan.fail(exc.errors or {"": exc.message})
    for rows in batch.values():
        try:
            await conn.execute(insert(tv.table), [values for _, values in rows])
        except IntegrityError:  # checked in this transaction: only a concurrent write gets here
            raise CrudError(409, Msg("rows changed while the file was written (near row {line}); preview the file "
                                     "again to see what is left to import", line=rows[0][0].line)) from None
        for plan, values in rows:
            plan.row_id = str(values[tv.pk])
            done.append((plan, None))
    after = await _existing(ctx, tv, [p.row_id for p, _ in done], conn)
    for action in ("create", "update"):
        await audit_many(ctx, conn, actor, action, tv, [(p.row_id, before, after.get(p.row_id)) for p, before in done
                                                        if (before is None) == (action == "create")])
    return len(done)
