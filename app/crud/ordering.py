"""Reordering rows of a table whose view declares `ordering` {field, group} (a pipeline's steps).

Rows sharing one order value form one stage (parallel steps share their `seq`) and move together.
A move renumbers the whole group 1, 2, 3… in one transaction, each changed row through the same
checks and audit as an edit, so an operator never edits three numbers to move one step and the
group never passes through gaps or duplicates.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.catalog import TableView
from app.core.context import AppContext
from app.crud.rows import Actor, CrudError
from app.crud.store import change_row, get_row, write_transaction

DIRECTIONS = {"up": -1, "down": 1}


def stages(rows: list[tuple[Any, Any]]) -> list[list[Any]]:
    """(id, order value) sorted by value → the ids of each stage, in order."""
    out: list[list[Any]] = []
    last = object()
    for row_id, value in rows:
        if out and value == last:
            out[-1].append(row_id)
        else:
            out.append([row_id])
        last = value
    return out


def moved(groups: list[list[Any]], row_id: Any, where: str | int) -> list[list[Any]]:
    """The stages after moving the stage holding `row_id` one place (`up`/`down`) or to a 1-based position."""
    at = next(i for i, ids in enumerate(groups) if row_id in ids)
    if isinstance(where, int):
        to = min(max(where, 1), len(groups)) - 1
    elif where in DIRECTIONS:
        to = min(max(at + DIRECTIONS[where], 0), len(groups) - 1)
    else:
        raise CrudError(422, "invalid input", {"dir": "must be up or down (or a position given as to)"})
    out = groups[:at] + groups[at + 1:]
    out.insert(to, groups[at])
    return out


def position(data: dict[str, Any]) -> str | int:
    """A request's `{"dir": "up"|"down"}` or `{"to": N}` (a form sends strings)."""
    to = data.get("to")
    if to not in (None, ""):
        if isinstance(to, bool) or not str(to).strip().isdigit() or len(str(to)) > 6:
            raise CrudError(422, "invalid input", {"to": "must be a position 1, 2, 3…"})
        return int(to)
    return str(data.get("dir") or "")


async def move_row(ctx: AppContext, tv: TableView, row_id: str, where: str | int, actor: Actor) -> dict:
    """Move the row's stage and renumber its group in one transaction; the moved row as it is now."""
    order = tv.view.get("ordering")
    if not order:
        raise CrudError(404, "this table has no order to change")
    field, group = order["field"], order["group"]
    t = tv.table
    async def work(conn: AsyncConnection) -> dict:
        row = await get_row(ctx, tv, row_id, conn)
        if row is None:
            raise CrudError(404, "not found")
        query = select(t.c[tv.pk], t.c[field]).order_by(t.c[field], t.c[tv.pk]).with_for_update()
        if group:
            query = query.where(t.c[group] == row[group])
        rows = [(r[0], r[1]) for r in await conn.execute(query)]
        current = dict(rows)
        groups = moved(stages(rows), row[tv.pk], where)
        for number, ids in enumerate(groups, start=1):
            for rid in ids:
                if current[rid] != number:
                    await change_row(ctx, conn, tv, rid, {field: number}, actor, strict=False)
        return await get_row(ctx, tv, row_id, conn)

    return await write_transaction(ctx, work)
