"""The one CRUD runtime: list, get, create, update, delete for any table of the catalog.

Every statement is built from the table's SQLAlchemy `Table`, every value is bound, and every
column a request names is checked against the spec first. Each write is one transaction that
also writes its audit row, so a failed write leaves nothing behind; a transaction that loses a
race (deadlock, lock wait, cluster certification) is run again whole (`write_transaction`).
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg, joined, title_of
from app.core.catalog import TableView
from app.core.clock import utcnow
from app.core.context import AppContext
from app.core.hooks import check_rules
from app.core.ids import new_id
from app.core.retry import in_transaction
from app.crud.dependents import DeletePlan, delete_plan
from app.crud.rows import Actor, CrudError, jsonable
from app.crud.validate import validate_input

T = TypeVar("T")


async def get_row(ctx: AppContext, tv: TableView, row_id: str, conn: AsyncConnection | None = None) -> dict | None:
    stmt = select(tv.table).where(tv.table.c[tv.pk] == row_id)
    if conn is not None:
        row = (await conn.execute(stmt)).first()
    else:
        async with ctx.db.connect() as c:
            row = (await c.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def _check_refs(ctx: AppContext, conn: AsyncConnection, tv: TableView, values: dict) -> dict[str, str]:
    """Code fields must point at an existing row (a clear 422 rather than an FK error)."""
    errors = {}
    for code in tv.spec.codes:
        value = values.get(code.field)
        target = ctx.catalog.tables.get(code.table) if code.is_plain_table else None
        if value is None or target is None:
            continue
        found = (await conn.execute(
            select(target.table.c[code.valuefield]).where(target.table.c[code.valuefield] == value).limit(1)
        )).first()
        if found is None:
            errors[code.field] = Msg("no such {table}", table=title_of(target.title))
    return errors


async def check_unique(conn: AsyncConnection, tv: TableView, values: dict, row_id: str | None,
                        current: dict | None) -> dict[str, str]:
    """Name the field of a unique clash before the database refuses it."""
    errors = {}
    t = tv.table
    for ix in tv.spec.indexes:
        if not ix.unique or not any(n in values for n in ix.fields):
            continue
        merged = {n: values.get(n, (current or {}).get(n)) for n in ix.fields}
        if any(v is None for v in merged.values()):
            continue
        stmt = select(t.c[tv.pk]).where(and_(*[t.c[n] == v for n, v in merged.items()]))
        if row_id is not None:
            stmt = stmt.where(t.c[tv.pk] != row_id)
        if (await conn.execute(stmt.limit(1))).first() is not None:
            name = next(n for n in ix.fields if n in values)
            errors[name] = Msg('already exists') if len(ix.fields) == 1 else \
                Msg("already exists for this {fields}", fields=", ".join(n for n in ix.fields if n != name))
    return errors


def _audit_values(tv: TableView, row: dict | None) -> str | None:
    if row is None:
        return None
    hidden = set(tv.view["confidential"])
    return json.dumps({k: jsonable(v) for k, v in row.items() if k not in hidden}, ensure_ascii=False,
                      sort_keys=True)


async def audit(ctx: AppContext, conn: AsyncConnection, actor: Actor, action: str, tv: TableView | str,
                row_id: str | None, before: dict | None, after: dict | None) -> None:
    """One audit row, in the caller's transaction, never with confidential values."""
    await audit_many(ctx, conn, actor, action, tv, [(row_id, before, after)])


async def audit_many(ctx: AppContext, conn: AsyncConnection, actor: Actor, action: str, tv: TableView | str,
                     changes: list[tuple[str | None, dict | None, dict | None]]) -> None:
    """Audit rows of (row id, before, after), one statement for all (an import's chunk)."""
    if not changes:
        return
    audit_tv = ctx.catalog.tables["audit_log"]
    name = tv if isinstance(tv, str) else tv.name
    fmt = (lambda r: _audit_values(tv, r)) if not isinstance(tv, str) else \
        (lambda r: json.dumps(r, ensure_ascii=False, sort_keys=True, default=jsonable) if r is not None else None)
    now = utcnow()
    rows = [dict(id=new_id(), user_id=actor.user_id, username=actor.username, action=action, table_name=name,
                 row_id=row_id, before_json=fmt(before), after_json=fmt(after), client_ip=actor.client_ip,
                 created_at=now) for row_id, before, after in changes]
    await conn.execute(insert(audit_tv.table), rows)


def _stamp(tv: TableView, values: dict, actor: Actor, creating: bool) -> None:
    now = utcnow()
    if "updated_at" in tv.fields:
        values["updated_at"] = now
    if creating:
        if "created_at" in tv.fields:
            values["created_at"] = now
        for key in ("logined_userid",):
            target = tv.view["logined"].get(key)
            if target:
                values[target] = actor.user_id


async def check_insert(ctx: AppContext, conn: AsyncConnection, tv: TableView, data: dict, *,
                       strict: bool) -> dict:
    """The values an insert of `data` would write, or its CrudError; writes nothing (an import's
    preview checks every row this way without holding a lock)."""
    values, errors = validate_input(tv, data, creating=True, strict=strict)
    if errors:
        raise CrudError(422, Msg('invalid input'), errors)
    defaults = {f.name: f.default for f in tv.spec.fields if f.default is not None and f.default != "CURRENT_TIMESTAMP"}
    errors = await _check_refs(ctx, conn, tv, values) | await check_unique(conn, tv, values, None, None)
    errors = errors or await check_rules(conn, tv, {**defaults, **values}, None)
    if errors:
        raise CrudError(422, Msg('invalid input'), errors)
    return values


async def insert_row(ctx: AppContext, conn: AsyncConnection, tv: TableView, data: dict, actor: Actor, *,
                     strict: bool) -> dict:
    """Validate and insert one row inside the caller's transaction (forms, API, imports)."""
    values = await check_insert(ctx, conn, tv, data, strict=strict)
    row_id = await write_insert(conn, tv, values, actor)
    row = await get_row(ctx, tv, row_id, conn)
    await audit(ctx, conn, actor, "create", tv, row_id, None, row)
    return row


def new_values(tv: TableView, values: dict, actor: Actor) -> dict:
    """Checked `values` as an insert writes them: a new id, the stamps."""
    if tv.pk == "id" and tv.fields["id"].is_string:
        values["id"] = new_id()
    _stamp(tv, values, actor, creating=True)
    return values


async def write_insert(conn: AsyncConnection, tv: TableView, values: dict, actor: Actor) -> str:
    """Insert checked `values` (stamped, with a new id); → the id. The caller audits (an import
    audits a chunk of rows at once)."""
    values = new_values(tv, values, actor)
    await _guarded_write(conn, insert(tv.table).values(**values))
    return values[tv.pk]


async def write_change(conn: AsyncConnection, tv: TableView, row_id: str, values: dict, actor: Actor) -> None:
    """Update row `row_id` with checked `values` (stamped); the caller audits."""
    _stamp(tv, values, actor, creating=False)
    if values:
        await _guarded_write(conn, update(tv.table).where(tv.table.c[tv.pk] == row_id).values(**values))


async def write_transaction(ctx: AppContext, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`work(conn)` as one transaction of the app database, run whole again on a conflict
    (deadlock, lock wait, a Galera certification failure); out of budget: 503 busy."""
    return await in_transaction(ctx.db, work, path="crud")


async def create_row(ctx: AppContext, tv: TableView, data: dict, actor: Actor, *, strict: bool) -> dict:
    return await write_transaction(ctx, lambda conn: insert_row(ctx, conn, tv, data, actor, strict=strict))


async def check_change(ctx: AppContext, conn: AsyncConnection, tv: TableView, before: dict, data: dict, *,
                       strict: bool) -> dict:
    """The values an update of row `before` with `data` would write, or its CrudError; writes nothing."""
    values, errors = validate_input(tv, data, creating=False, strict=strict)
    if errors:
        raise CrudError(422, Msg('invalid input'), errors)
    row_id = before[tv.pk]
    errors = await _check_refs(ctx, conn, tv, values) | await check_unique(conn, tv, values, row_id, before)
    errors = errors or await check_rules(conn, tv, {**before, **values}, row_id)
    if errors:
        raise CrudError(422, Msg('invalid input'), errors)
    return values


async def change_row(ctx: AppContext, conn: AsyncConnection, tv: TableView, row_id: str, data: dict,
                     actor: Actor, *, strict: bool) -> dict:
    """Validate and update one row inside the caller's transaction; audited before → after."""
    before = await get_row(ctx, tv, row_id, conn)
    if before is None:
        raise CrudError(404, Msg('not found'))
    values = await check_change(ctx, conn, tv, before, data, strict=strict)
    await write_change(conn, tv, row_id, values, actor)
    after = await get_row(ctx, tv, row_id, conn)
    await audit(ctx, conn, actor, "update", tv, row_id, before, after)
    return after


async def update_row(ctx: AppContext, tv: TableView, row_id: str, data: dict, actor: Actor, *,
                     strict: bool) -> dict:
    return await write_transaction(ctx, lambda conn: change_row(ctx, conn, tv, row_id, data, actor, strict=strict))


async def plan_delete(ctx: AppContext, tv: TableView, rows: list[dict]) -> DeletePlan:
    """What deleting `rows` would take with it and what keeps them (the confirmation page)."""
    async with ctx.db.connect() as conn:
        return await delete_plan(conn, ctx.catalog, tv, rows)


async def delete_rows(ctx: AppContext, tv: TableView, row_ids: list[str], actor: Actor) -> int:
    """Delete one or many rows in one transaction, all or none, and only when nothing keeps any
    of them (app/crud/dependents.py); their parts go with them (the database cascades)."""
    async def work(conn: AsyncConnection) -> int:
        rows = []
        for row_id in dict.fromkeys(row_ids):
            before = await get_row(ctx, tv, row_id, conn)
            if before is None:
                raise CrudError(404, Msg('not found: {row_id}', row_id=row_id))
            rows.append(before)
        plan = await delete_plan(conn, ctx.catalog, tv, rows)
        if not plan.allowed:
            what = title_of(tv.title)
            raise CrudError(409, Msg("{blocked} of {rows} {what} rows cannot be deleted", blocked=len(plan.blocked),
                                     rows=len(rows), what=what)
                            if len(rows) > 1 else Msg("this row of {what} cannot be deleted", what=what),
                            {row_id: joined("; ", reasons) for row_id, reasons in plan.blocked.items()})
        for row in rows:
            row_id = row[tv.pk]
            await _guarded_write(conn, delete(tv.table).where(tv.table.c[tv.pk] == row_id))
            await audit(ctx, conn, actor, "delete", tv, row_id, row, None)
        return len(rows)

    return await write_transaction(ctx, work)


async def _guarded_write(conn: AsyncConnection, stmt) -> None:
    """A constraint the checks above could not see (a race, an FK restrict) → a clean 409."""
    try:
        await conn.execute(stmt)
    except IntegrityError as exc:
        text = str(exc.orig).lower()
        if "foreign key" in text:
            raise CrudError(409, Msg('other rows still refer to this one')) from None
        if "unique" in text or "duplicate" in text:
            raise CrudError(409, Msg('a row with the same unique value already exists')) from None
        if "check" in text:
            raise CrudError(422, Msg('a value is not allowed')) from None
        raise CrudError(409, Msg('the database refused the change')) from None
