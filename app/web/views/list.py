"""The list page of a table: search, filters, ranges, sort, pages (numbered; the next and previous by cursor)."""
from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.response import Template

from app.core.catalog import TableView
from app.core.context import ctx_of
from app.core.i18n import Verbatim
from app.crud.query import code_texts, list_rows, parse_list_query
from app.web.render import render
from app.web.ui import zone_of
from app.web.views.bulk import bulk_ops
from app.web.views.common import Route, can, picked_options


def rows_template_of(tv: TableView) -> str:
    """The table's `<tbody>` rows, compiled by the build (generators/rows.py)."""
    return f"rows/{tv.module}/{tv.name}.html"


def list_page(route: Route) -> list[HTTPRouteHandler]:
    tv = route.table
    rows_template = rows_template_of(tv)

    async def handler(request: Request) -> Template:
        ctx = ctx_of(request)
        params = dict(request.query_params)
        lq = parse_list_query(tv, params, zone_of(request))
        result = await list_rows(ctx, tv, lq)
        result["rows"] = Verbatim(result["rows"])
        texts = await code_texts(ctx, tv, result["rows"])
        sort = ",".join(lq.sort or tv.view["sort"])

        def self_url(**changes: Any) -> str:
            merged = {k: v for k, v in {**params, **{k: str(v) for k, v in changes.items()}}.items() if v != ""}
            return f"{tv.base}?{urlencode(merged)}"

        def page_url(n: int) -> str:
            """Page n: the pages beside this one by their cursors (flat at any depth), others by number."""
            cursor = {lq.page + 1: ("after", result["next"]), lq.page - 1: ("before", result["prev"])}.get(n)
            if n > 1 and cursor and cursor[1]:
                return self_url(page=n, **{"after": "", "before": "", cursor[0]: cursor[1]})
            return self_url(page=n, after="", before="")

        ranges = {k: v for k, v in params.items() if k.endswith(("__from", "__to"))}
        return render(
            request,
            "list.html",
            tv=tv,
            result=result,
            query={"q": lq.q, "after": lq.after, "before": lq.before},
            ranges=ranges,
            filters={k: str(v) for k, v in lq.filters.items()},
            picked=await picked_options(request, tv, tv.view["filter_fields"], lq.filters),
            sort=sort,
            self_url=self_url,
            page_url=page_url,
            texts=texts,
            rows_template=rows_template,
            pages=max(1, math.ceil(result["total"] / lq.rows)),
            pages_label=f"{math.ceil(result['total'] / lq.rows):,}+" if result["total_is_estimate"] else None,
            can_create=not tv.view["noedit"] and can(request, f"{tv.base}/new"),
            can_bulk=not tv.view["noedit"] and can(request, f"{tv.base}/bulk"),
            can_import=not tv.view["noedit"] and can(request, f"{tv.base}/import"),
            bulk_ops=bulk_ops(tv),
            export_query=urlencode({k: v for k, v in params.items() if k not in ("page", "rows", "after", "before")}),
            bulk_done=request.query_params.get("_done"),
        )

    return [get(route.path, name=f"{tv.name}.list", include_in_schema=False)(handler)]

