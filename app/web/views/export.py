"""Export the current list (its search, filters and sort) to CSV or xlsx, streamed.

Rows come from a server-side cursor in chunks and go out as they are written, so 200,000 rows
never sit in memory at once; the xlsx uses openpyxl's write-only mode (rows go to a temp file).
What a file holds imports back unchanged: the id first, code fields as their readable text (a
pipeline's name, not its id), cells as `sheets` writes them (typed, never a formula).
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream
from openpyxl import Workbook
from sqlalchemy import func, select

from app.core.catalog import Catalog, TableView
from app.core.context import ctx_of
from app.crud.query import order_by, parse_list_query, where_clauses
from app.web.ui import lang_of, zone_of
from app.web.views.common import Route
from app.web.views.sheets import csv_cell, xlsx_cell

CHUNK = 2000


def export_fields(tv: TableView) -> list[str]:
    """Visible columns, never confidential ones; the primary key first so a file can be matched back."""
    fields = [n for n in tv.view["list_fields"] if n not in tv.view["confidential"]]
    return ([tv.pk] if tv.pk not in fields else []) + fields


def header(tv: TableView, fields: list[str], lang: str) -> list[str]:
    """Column titles in the UI language; the importer accepts titles (either language) or names."""
    return [tv.fields[n].label(lang) for n in fields]


def readable_columns(catalog: Catalog, tv: TableView, fields: list[str]) -> tuple[list[Any], Any]:
    """The exported columns and their FROM: a code field as its row's snapshot of the text, else its
    target's text (outer-joined, the raw value when the target is gone), every other field as it is."""
    t = tv.table
    joined, cols = t, []
    for name in fields:
        code = tv.spec.code_for(name)
        target = catalog.tables.get(code.table) if code and code.is_plain_table else None
        if target is None:
            cols.append(t.c[name])
            continue
        other = target.table.alias(f"fk_{name}")
        joined = joined.outerjoin(other, other.c[code.valuefield] == t.c[name])
        kept = [t.c[code.snapshot]] if code.snapshot else []  # the text of the time, as the pages show it
        cols.append(func.coalesce(*kept, other.c[code.textfield], t.c[name]).label(name))
    return cols, joined


async def rows_of(request: Request, tv: TableView, fields: list[str]) -> AsyncIterator[tuple[Any, ...]]:
    params = {k: v for k, v in request.query_params.items() if k not in ("page", "rows", "after", "before")}
    lq = parse_list_query(tv, params, zone_of(request))
    ctx = ctx_of(request)
    cols, joined = readable_columns(ctx.catalog, tv, fields)
    stmt = select(*cols).select_from(joined).where(*where_clauses(tv, lq)).order_by(*order_by(tv, lq.sort))
    async with ctx.db.connect() as conn:
        result = await conn.stream(stmt.execution_options(yield_per=CHUNK))
        async for partition in result.partitions(CHUNK):
            for row in partition:
                yield tuple(row)


def export_csv(route: Route) -> list[HTTPRouteHandler]:
    """The list as CSV (UTF-8 with a BOM, so spreadsheet programs read the Chinese right)."""
    tv = route.table

    async def to_csv(request: Request) -> Stream:
        fields = export_fields(tv)

        async def body() -> AsyncIterator[bytes]:
            buf = io.StringIO()
            writer = csv.writer(buf)
            buf.write("\ufeff")
            writer.writerow([csv_cell(h) for h in header(tv, fields, lang_of(request))])
            n = 0
            async for row in rows_of(request, tv, fields):
                writer.writerow([csv_cell(v) for v in row])
                n += 1
                if n % 500 == 0:
                    yield buf.getvalue().encode()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue().encode()

        return Stream(body(), media_type="text/csv; charset=utf-8",
                      headers={"Content-Disposition": f'attachment; filename="{tv.name}.csv"'})

    return [get(route.path, name=f"{tv.name}.export_csv", include_in_schema=False)(to_csv)]


def export_xlsx(route: Route) -> list[HTTPRouteHandler]:
    """The list as xlsx, written in a worker thread to a temp file and streamed from it."""
    tv = route.table

    async def to_xlsx(request: Request) -> Stream:
        fields = export_fields(tv)
        wb = Workbook(write_only=True)
        ws = wb.create_sheet(tv.name[:31])
        ws.append([xlsx_cell(ws, h) for h in header(tv, fields, lang_of(request))])

        def append(rows: list[tuple[Any, ...]]) -> None:
            for row in rows:
                ws.append([xlsx_cell(ws, v) for v in row])

        chunk: list[tuple[Any, ...]] = []
        async for row in rows_of(request, tv, fields):
            chunk.append(row)
            if len(chunk) >= CHUNK:
                await anyio.to_thread.run_sync(append, chunk)
                chunk = []
        await anyio.to_thread.run_sync(append, chunk)
        fd, path = tempfile.mkstemp(suffix=".xlsx")
        os.close(fd)
        await anyio.to_thread.run_sync(wb.save, path)

        async def body() -> AsyncIterator[bytes]:
            try:
                async with await anyio.open_file(path, "rb") as fh:
                    while chunk := await fh.read(65536):
                        yield chunk
            finally:
                os.unlink(path)

        return Stream(body(), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                      headers={"Content-Disposition": f'attachment; filename="{tv.name}.xlsx"'})

    return [get(route.path, name=f"{tv.name}.export_xlsx", include_in_schema=False)(to_xlsx)]
