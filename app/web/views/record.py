"""The record page of a row: its fields, toolbar actions, subtables, module blocks and history."""
from __future__ import annotations

from functools import partial
from typing import Any

from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Template

from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.query import code_texts, list_rows, parse_list_query
from app.crud.rows import public
from app.web.render import render
from app.web.ui import lang_of, zone_of
from app.web.views.common import Route, can, display, heading_of, row_or_404
from app.web.views.parents import crumbs_of


def record_page(route: Route) -> list[HTTPRouteHandler]:
    tv = route.table

    async def handler(request: Request, id: FromPath[str]) -> Template:  # noqa: A002 - the route's name
        return render(request, "record.html", **await record_context(request, tv, id))

    return [get(route.path, name=f"{tv.name}.record", include_in_schema=False)(handler)]


async def record_context(request: Request, tv: TableView, row_id: str) -> dict[str, Any]:
    """Everything the record page shows; actions add their own blocks through `record_extras`."""
    from app.core.hooks import record_extras

    ctx = ctx_of(request)
    row = await row_or_404(ctx, tv, row_id)
    shown = public(tv, row)
    texts = await code_texts(ctx, tv, [shown])
    actions = [a for a in tv.view["actions"] if can(request, f"{tv.base}/{row_id}/{a['name']}")]
    return dict(
        tv=tv,
        row=shown,
        row_id=row_id,
        heading=heading_of(tv, shown),
        show=display(tv, texts, lang_of(request), zone_of(request)),
        actions=actions,
        subtables=await subtable_blocks(request, tv, row_id),
        can_edit=not tv.view["noedit"] and can(request, f"{tv.base}/{row_id}/edit"),
        crumbs=await crumbs_of(request, tv, row),
        extra_blocks=await record_extras(request, tv, row),
        history=await history_of(request, tv, row_id),
    )


async def subtable_blocks(request: Request, tv: TableView, row_id: str) -> list[dict]:
    """The first rows of each subtable that points at this row, for the user who may list it."""
    ctx = ctx_of(request)
    blocks = []
    for sub in tv.view["subtables"]:
        stv = ctx.catalog.tables[sub["table"]]
        if not can(request, stv.base):
            continue
        lq = parse_list_query(stv, {sub["field"]: row_id, "rows": "20"})
        result = await list_rows(ctx, stv, lq)
        texts = await code_texts(ctx, stv, result["rows"])
        columns = [n for n in stv.view["list_fields"] if n != sub["field"]][:8]
        blocks.append(
            {
                **sub,
                "tv": stv,
                "result": result,
                "columns": columns,
                "show": display(stv, texts, lang_of(request), zone_of(request)),
                "name_of": partial(heading_of, stv),
                "can_create": not stv.view["noedit"] and can(request, f"{stv.base}/new"),
                "can_move": bool(stv.view.get("ordering")) and not stv.view["noedit"] and bool(result["rows"])
                and can(request, f"{stv.base}/{result['rows'][0][stv.pk]}/move"),
            }
        )
    return blocks


async def history_of(request: Request, tv: TableView, row_id: str) -> dict | None:
    """The row's audit trail, newest first, for users who may read the audit log."""
    audit_tv = ctx_of(request).catalog.tables.get("audit_log")
    if audit_tv is None or tv.name == "audit_log" or not can(request, audit_tv.base):
        return None
    lq = parse_list_query(audit_tv, {"table_name": tv.name, "q": "", "rows": "20"})
    lq.filters["row_id"] = row_id
    result = await list_rows(ctx_of(request), audit_tv, lq)
    return {"tv": audit_tv, "result": result, "link": f"{audit_tv.base}?table_name={tv.name}&q={row_id}"}
