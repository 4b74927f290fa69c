"""The one CRUD runtime: list, get, create, update, delete for any table of the catalog.

Every statement is built from the table's SQLAlchemy `Table`, every value is bound, and every
column a request names is checked against the spec first. Each write is one transaction that
also writes its audit row, so a failed write leaves nothing behind.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import operators

from app.core.catalog import Catalog, TableView
from app.core.clock import utcnow
from app.core.context import AppContext
from app.core.hooks import check_rules
from app.core.ids import new_id
from app.crud.validate import Invalid, coerce, validate_input

MAX_ROWS = 500
COUNT_CAP = 10_000
LIST_PARAMS = {"page", "rows", "sort", "q", "after"}


class CrudError(Exception):
    """A request the runtime refuses: status, a message, and problems by field."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or {}


@dataclass
class Actor:
    """Who is writing: recorded in created_by and the audit trail."""

    user_id: str | None
    username: str | None
    client_ip: str | None = None


@dataclass
class ListQuery:
    page: int = 1
    rows: int = 20
    sort: list[str] = field(default_factory=list)
    q: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    after: str = ""


def jsonable(value: Any) -> Any:
    """Exact JSON: money stays a decimal string, times are ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


def public(tv: TableView, row: Any) -> dict[str, Any]:
    """A row as the outside may see it: confidential fields never leave the server."""
    hidden = set(tv.view["confidential"])
    return {k: jsonable(v) for k, v in dict(row._mapping if hasattr(row, "_mapping") else row).items()
            if k not in hidden}


def parse_list_query(tv: TableView, params: dict[str, str]) -> ListQuery:
    """Query string → ListQuery; any parameter the spec does not allow is a 400."""
    errors: dict[str, str] = {}
    lq = ListQuery(rows=tv.view["page_rows"])
    filterable = set(tv.view["filter_fields"]) | {s["field"] for s in _parent_links(tv)}
    for key, raw in params.items():
        if key in ("page", "rows"):
            try:
                number = int(raw)
                if number < 1:
                    raise ValueError
                setattr(lq, key, min(number, MAX_ROWS) if key == "rows" else number)
            except ValueError:
                errors[key] = "must be a positive whole number"
        elif key == "sort":
            for part in filter(None, (p.strip() for p in raw.split(","))):
                name = part.lstrip("-+")
                if name not in tv.view["sortable"] and name not in tv.spec.primary:
                    errors["sort"] = f"cannot sort by {name!r}"
                else:
                    lq.sort.append(part.lstrip("+"))
        elif key == "q":
            lq.q = raw.strip()[:200]
        elif key == "after":
            lq.after = raw[:1000]
        elif key.endswith(("__from", "__to")):
            name, _, end = key.rpartition("__")
            f = tv.fields.get(name)
            if f is None or name not in tv.view["list_fields"] or f.is_text or f.type == "bin":
                errors[key] = "unknown range filter"
                continue
            try:
                value = coerce(f, raw) if raw != "" else None
            except Invalid as exc:
                errors[key] = str(exc)
                continue
            low, high = lq.ranges.get(name, (None, None))
            lq.ranges[name] = (value, high) if end == "from" else (low, value)
        elif key in filterable:
            if raw == "":
                continue
            try:
                lq.filters[key] = coerce(tv.fields[key], raw)
            except Invalid as exc:
                errors[key] = str(exc)
        elif key in LIST_PARAMS or key.startswith("_"):
            continue
        else:
            errors[key] = "unknown parameter"
    if errors:
        raise CrudError(400, "bad list parameters", errors)
    return lq


def _parent_links(tv: TableView) -> list[dict]:
    """Fields through which a parent record lists this table (code fields), filterable always."""
    return [{"field": c.field} for c in tv.spec.codes]


def _where(tv: TableView, lq: ListQuery) -> list:
    t = tv.table
    clauses = [t.c[name] == value for name, value in lq.filters.items()]
    for name, (low, high) in lq.ranges.items():
        if low is not None:
            clauses.append(t.c[name] >= low)
        if high is not None:
            clauses.append(t.c[name] <= high)
    if lq.q and tv.view["search_fields"]:
        pattern = "%" + lq.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(or_(*[t.c[n].like(pattern, escape="\\") for n in tv.view["search_fields"]]))
    return clauses


def _order(tv: TableView, sort: list[str]) -> list:
    t = tv.table
    order = []
    for part in sort or tv.view["sort"]:
        col = t.c[part.lstrip("-")]
        order.append(col.desc() if part.startswith("-") else col.asc())
    pk = t.c[tv.pk]
    if not any(part.lstrip("-") == tv.pk for part in sort or tv.view["sort"]):
        order.append(pk.desc() if (sort or tv.view["sort"] or ["-"])[0].startswith("-") else pk.asc())
    return order


async def list_rows(ctx: AppContext, tv: TableView, lq: ListQuery) -> dict[str, Any]:
    """One page of rows plus the total, the ecosystem's `{"total": n, "rows": [...]}`.

    Big tables (view option `big`) page by keyset (`after` = the last row's sort values), never
    by a deep OFFSET, and count at most COUNT_CAP rows, saying so with `total_is_estimate`.
    """
    t = tv.table
    where = _where(tv, lq)
    cols = [t.c[n] for n in tv.fields if n not in tv.view["confidential"]]
    order = _order(tv, lq.sort)
    stmt = select(*cols).where(*where).order_by(*order)
    big = tv.view.get("big")
    if big:
        if lq.after:
            stmt = stmt.where(_keyset_after(tv, order, lq.after))
        stmt = stmt.limit(lq.rows)
        count_stmt = select(func.count()).select_from(select(t.c[tv.pk]).where(*where).limit(COUNT_CAP + 1).subquery())
    else:
        stmt = stmt.limit(lq.rows).offset((lq.page - 1) * lq.rows)
        count_stmt = select(func.count()).select_from(t).where(*where)
    async with ctx.db.connect() as conn:
        total = (await conn.execute(count_stmt)).scalar_one()
        raw_rows = (await conn.execute(stmt)).all()
    rows = [public(tv, r) for r in raw_rows]
    result: dict[str, Any] = {"total": min(total, COUNT_CAP) if big else total, "page": lq.page,
                              "rows_per_page": lq.rows, "rows": rows}
    if big:
        result["total_is_estimate"] = total > COUNT_CAP
        result["next"] = _cursor(order, raw_rows[-1]) if len(raw_rows) == lq.rows else None
    return result


def _cursor(order: list, row: Any) -> str:
    """The last row's sort values, opaque to the client."""
    values = [jsonable(row._mapping[o.element.name]) for o in order]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def _keyset_after(tv: TableView, order: list, cursor: str):
    """(c1, c2, ..) strictly after the cursor in the ORDER BY's directions, portable SQL."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, list) or len(values) != len(order):
            raise ValueError
        values = [coerce(tv.fields[o.element.name], v) for o, v in zip(order, values, strict=True)]
    except (ValueError, Invalid, TypeError):
        raise CrudError(400, "bad list parameters", {"after": "not a cursor of this list"}) from None
    clauses = []
    for i, o in enumerate(order):
        col = o.element
        later = col < values[i] if o.modifier is operators.desc_op else col > values[i]
        clauses.append(and_(*[order[j].element == values[j] for j in range(i)], later))
    return or_(*clauses)


async def code_texts(ctx: AppContext, tv: TableView, rows: list[dict]) -> dict[str, dict[str, str]]:
    """Display text of code (lookup) fields for a page of rows: one query per code field."""
    out: dict[str, dict[str, str]] = {}
    catalog: Catalog = ctx.catalog
    async with ctx.db.connect() as conn:
        for code in tv.spec.codes:
            target = catalog.tables.get(code.table) if code.is_plain_table else None
            values = {r.get(code.field) for r in rows if r.get(code.field) is not None}
            if target is None or not values:
                continue
            tt = target.table
            result = await conn.execute(
                select(tt.c[code.valuefield], tt.c[code.textfield]).where(tt.c[code.valuefield].in_(values)))
            out[code.field] = {str(v): str(text) for v, text in result.all()}
    return out


async def lookup_options(ctx: AppContext, tv: TableView, field_name: str, q: str, limit: int = 20) -> list[dict]:
    """Options for a code field's dropdown, searched by text: works with 100,000 rows."""
    code = tv.spec.code_for(field_name)
    target = ctx.catalog.tables.get(code.table) if code and code.is_plain_table else None
    if target is None:
        raise CrudError(404, "no lookup for this field")
    tt = target.table
    value_col, text_col = tt.c[code.valuefield], tt.c[code.textfield]
    stmt = select(value_col, text_col)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(text_col.like(pattern, escape="\\"), value_col == q))
    stmt = stmt.order_by(text_col).limit(limit)
    async with ctx.db.connect() as conn:
        return [{"value": str(v), "text": str(t)} for v, t in (await conn.execute(stmt)).all()]


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
            errors[code.field] = f"no such {target.title('en').lower()}"
    return errors


async def _check_unique(conn: AsyncConnection, tv: TableView, values: dict, row_id: str | None,
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
            errors[name] = "already exists" if len(ix.fields) == 1 else \
                f"already exists for this {', '.join(n for n in ix.fields if n != name)}"
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
    audit_tv = ctx.catalog.tables["audit_log"]
    name = tv if isinstance(tv, str) else tv.name
    fmt = (lambda r: _audit_values(tv, r)) if not isinstance(tv, str) else \
        (lambda r: json.dumps(r, ensure_ascii=False, sort_keys=True, default=jsonable) if r is not None else None)
    await conn.execute(insert(audit_tv.table).values(
        id=new_id(), user_id=actor.user_id, username=actor.username, action=action, table_name=name,
        row_id=row_id, before_json=fmt(before), after_json=fmt(after), client_ip=actor.client_ip,
        created_at=utcnow()))


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


async def insert_row(ctx: AppContext, conn: AsyncConnection, tv: TableView, data: dict, actor: Actor, *,
                     strict: bool) -> dict:
    """Validate and insert one row inside the caller's transaction (forms, API, imports)."""
    values, errors = validate_input(tv, data, creating=True, strict=strict)
    if errors:
        raise CrudError(422, "invalid input", errors)
    if tv.pk == "id" and tv.fields["id"].is_string:
        values["id"] = new_id()
    _stamp(tv, values, actor, creating=True)
    defaults = {f.name: f.default for f in tv.spec.fields if f.default is not None and f.default != "CURRENT_TIMESTAMP"}
    errors = await _check_refs(ctx, conn, tv, values) | await _check_unique(conn, tv, values, None, None)
    errors = errors or await check_rules(conn, tv, {**defaults, **values}, None)
    if errors:
        raise CrudError(422, "invalid input", errors)
    await _guarded_write(conn, insert(tv.table).values(**values))
    row = await get_row(ctx, tv, values[tv.pk], conn)
    await audit(ctx, conn, actor, "create", tv, values[tv.pk], None, row)
    return row


async def create_row(ctx: AppContext, tv: TableView, data: dict, actor: Actor, *, strict: bool) -> dict:
    async with ctx.db.begin() as conn:
        return await insert_row(ctx, conn, tv, data, actor, strict=strict)


async def change_row(ctx: AppContext, conn: AsyncConnection, tv: TableView, row_id: str, data: dict,
                     actor: Actor, *, strict: bool) -> dict:
    """Validate and update one row inside the caller's transaction; audited before → after."""
    values, errors = validate_input(tv, data, creating=False, strict=strict)
    if errors:
        raise CrudError(422, "invalid input", errors)
    before = await get_row(ctx, tv, row_id, conn)
    if before is None:
        raise CrudError(404, "not found")
    errors = await _check_refs(ctx, conn, tv, values) | await _check_unique(conn, tv, values, row_id, before)
    errors = errors or await check_rules(conn, tv, {**before, **values}, row_id)
    if errors:
        raise CrudError(422, "invalid input", errors)
    _stamp(tv, values, actor, creating=False)
    if values:
        await _guarded_write(conn, update(tv.table).where(tv.table.c[tv.pk] == row_id).values(**values))
    after = await get_row(ctx, tv, row_id, conn)
    await audit(ctx, conn, actor, "update", tv, row_id, before, after)
    return after


async def update_row(ctx: AppContext, tv: TableView, row_id: str, data: dict, actor: Actor, *,
                     strict: bool) -> dict:
    async with ctx.db.begin() as conn:
        return await change_row(ctx, conn, tv, row_id, data, actor, strict=strict)


async def delete_rows(ctx: AppContext, tv: TableView, row_ids: list[str], actor: Actor) -> int:
    """Delete one or many rows in one transaction; all or none."""
    async with ctx.db.begin() as conn:
        for row_id in row_ids:
            before = await get_row(ctx, tv, row_id, conn)
            if before is None:
                raise CrudError(404, f"not found: {row_id}")
            await _guarded_write(conn, delete(tv.table).where(tv.table.c[tv.pk] == row_id))
            await audit(ctx, conn, actor, "delete", tv, row_id, before, None)
    return len(row_ids)


async def _guarded_write(conn: AsyncConnection, stmt) -> None:
    """A constraint the checks above could not see (a race, an FK restrict) → a clean 409."""
    try:
        await conn.execute(stmt)
    except IntegrityError as exc:
        text = str(exc.orig).lower()
        if "foreign key" in text:
            raise CrudError(409, "other rows still refer to this one") from None
        if "unique" in text or "duplicate" in text:
            raise CrudError(409, "a row with the same unique value already exists") from None
        if "check" in text:
            raise CrudError(422, "a value is not allowed") from None
        raise CrudError(409, "the database refused the change") from None
