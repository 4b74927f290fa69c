"""Import rows from xlsx or CSV with the same rules as the form: preview, then write.

Modes: `preview` shows what every row would do (insert, update with its changes, skip, or the
error) and writes nothing; it keeps the file for a while so the page's "Import" button writes
exactly what was shown. `all` writes only when every row passes; `valid` writes the rows that
pass and reports the rest. The file is read in a worker thread, off the event loop, with no
database connection open; the checks and writes come after (app/crud/imports.py).
"""
from __future__ import annotations

import io
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.handlers import HTTPRouteHandler
from litestar.response import Response, Template
from openpyxl import Workbook

from app.core.i18n import Msg, localize
from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.imports import RowPlan, Tally, apply_import, map_columns, plan_chunks
from app.crud.rows import CrudError
from app.crud.sheets_read import read_sheet
from app.web.render import render
from app.web.ui import lang_of
from app.web.views.common import Route, actor_of

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
MODES = ("preview", "all", "valid")
SHOWN = 500  # rows of changes a preview page lists (the counts cover every row)
KEPT_SECONDS = 3600  # how long a previewed file waits for its "Import" button
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


@dataclass
class Report:
    """What an upload did, for the page: counts by action, the errors, the first changes."""

    rows: int
    counts: dict[str, int]
    errors: list[dict[str, Any]]
    shown: list[RowPlan]
    ignored: list[str]
    written: int = 0
    committed: bool = False
    token: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def report_of(tv: TableView, tally: Tally, ignored: list[str], lang: str) -> Report:
    errors = [{"row": line, "field": name, "column": tv.fields[name].label(lang) if name else "",
               "message": localize(lang, msg)}
              for line, name, msg in tally.errors]
    return Report(tally.rows, tally.counts, errors, tally.shown, ignored,
                  labels={n: f.label(lang) for n, f in tv.fields.items()})


def kept_dir(request: Request) -> Path:
    return Path(ctx_of(request).settings.data_dir) / "imports"


def keep(request: Request, tv: TableView, filename: str, content: bytes) -> str:
    """Keep a previewed file for its "Import" button; → its token. Old ones are cleared here."""
    folder = kept_dir(request)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("*.json"):
        if now - old.stat().st_mtime > KEPT_SECONDS:
            old.unlink(missing_ok=True)
            old.with_suffix(".bin").unlink(missing_ok=True)
    token = secrets.token_urlsafe(24)
    from app.auth.principal import principal_of

    (folder / f"{token}.bin").write_bytes(content)
    (folder / f"{token}.json").write_text(json.dumps(
        {"table": tv.name, "user": principal_of(request).user_id, "filename": filename}))
    return token


def kept(request: Request, tv: TableView, token: str) -> tuple[str, bytes]:
    """The file a preview kept for this user and table; → (filename, content)."""
    from app.auth.principal import principal_of

    meta_path = kept_dir(request) / f"{token}.json"
    if not TOKEN.match(token) or not meta_path.exists():
        raise CrudError(400, Msg('the previewed file is gone; upload it again'))
    meta = json.loads(meta_path.read_text())
    if meta["table"] != tv.name or meta["user"] != principal_of(request).user_id \
            or time.time() - meta_path.stat().st_mtime > KEPT_SECONDS:
        raise CrudError(400, Msg('the previewed file is gone; upload it again'))
    return meta["filename"], meta_path.with_suffix(".bin").read_bytes()


def forget(request: Request, token: str) -> None:
    if TOKEN.match(token):
        for suffix in (".json", ".bin"):
            (kept_dir(request) / f"{token}{suffix}").unlink(missing_ok=True)


async def run_import(request: Request, tv: TableView, filename: str, content: bytes, mode: str) -> Report:
    """Read the file off the event loop (nothing open on the database meanwhile), then plan it
    chunk by chunk, writing each chunk unless previewing."""
    sheet = await anyio.to_thread.run_sync(read_sheet, filename, content, MAX_ROWS)
    columns = map_columns(tv, sheet.header)
    ctx, lang = ctx_of(request), lang_of(request)
    if mode == "preview":
        tally = Tally(SHOWN)
        async for plans in plan_chunks(ctx, tv, columns, sheet.rows, check=True):
            tally.add(plans)
        report = report_of(tv, tally, columns.ignored, lang)
        if report.counts["insert"] or report.counts["update"]:
            report.token = await anyio.to_thread.run_sync(keep, request, tv, filename, content)
        return report
    written, tally = await apply_import(ctx, tv, columns, sheet.rows, actor_of(request),
                                        all_or_nothing=mode == "all", shown=SHOWN)
    report = report_of(tv, tally, columns.ignored, lang)
    report.written, report.committed = written, not (mode == "all" and report.counts["error"])
    return report


def template_workbook(tv: TableView, lang: str) -> bytes:
    """The import template: one header row of the form's fields, and a sheet explaining them."""
    wb = Workbook()
    ws = wb.active
    ws.title = tv.name[:31]
    ws.append([tv.fields[n].label(lang) for n in tv.view["form_fields"]])
    help_ws = wb.create_sheet("help")
    help_ws.append(["column", "field", "type", "required", "allowed values", "notes"])
    for n in tv.view["form_fields"]:
        f = tv.fields[n]
        help_ws.append(
            [
                f.label(lang),
                n,
                f.type + (f"({f.length}{',' + str(f.dec) if f.dec else ''})" if f.length else ""),
                "yes" if not f.nullable and f.default is None else "no",
                ", ".join(c.value for c in f.choices),
                f.comments or "",
            ]
        )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def uploaded(request: Request, tv: TableView, form: Any) -> tuple[str, bytes, str]:
    """The upload's (filename, content, token): a new file, or the one a preview kept."""
    token = str(form.get("token") or "")
    if token:
        filename, content = await anyio.to_thread.run_sync(kept, request, tv, token)
        return filename, content, token
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise CrudError(400, Msg('choose a .xlsx or .csv file'))
    content = await file.read(MAX_BYTES + 1)
    if len(content) > MAX_BYTES:
        raise CrudError(413, Msg('the file is larger than 20 MB'))
    return file.filename, content, ""


def import_page(route: Route) -> list[HTTPRouteHandler]:
    """The upload form, and the upload: the preview's diff, or what was written, row by row."""
    tv = route.table

    async def page(request: Request) -> Template:
        return render(request, "import.html", tv=tv, report=None, mode="preview")

    async def upload(request: Request) -> Template:
        form = await request.form()
        mode = form.get("mode") if form.get("mode") in MODES else "preview"
        try:
            filename, content, token = await uploaded(request, tv, form)
            report = await run_import(request, tv, filename, content, mode)
        except CrudError as exc:
            return render(
                request, "import.html", status_code=exc.status, tv=tv, report=None, mode=mode, form_error=exc.message
            )
        if token and report.committed:
            await anyio.to_thread.run_sync(forget, request, token)
        status = 200 if not report.errors else 422
        return render(request, "import.html", status_code=status, tv=tv, report=report, mode=mode)

    return [
        get(route.path, name=f"{tv.name}.import.get", include_in_schema=False)(page),
        post(route.path, name=f"{tv.name}.import.post", include_in_schema=False,
             request_max_body_size=MAX_BYTES + 65536)(upload),
    ]


def import_template(route: Route) -> list[HTTPRouteHandler]:
    """The import template of `template_workbook`, in the UI language."""
    tv = route.table

    async def template(request: Request) -> Response:
        data = await anyio.to_thread.run_sync(template_workbook, tv, lang_of(request))
        return Response(
            data,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{tv.name}-template.xlsx"'},
        )

    return [get(route.path, name=f"{tv.name}.import_template", include_in_schema=False)(template)]
