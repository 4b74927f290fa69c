"""Import rows from xlsx or CSV with the same rules as the form, all in one transaction.

Modes: `preview` validates every row (inserting inside a transaction that is rolled back, so
unique clashes within the file and business rules are seen too) and writes nothing; `all`
writes only when every row passes; `valid` writes the rows that pass and reports the rest.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import anyio
from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.handlers import HTTPRouteHandler
from litestar.response import Response, Template
from openpyxl import Workbook, load_workbook

from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.rows import CrudError
from app.crud.store import insert_row
from app.web.render import render
from app.web.ui import lang_of
from app.web.views.common import Route, actor_of

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
MODES = ("preview", "all", "valid")


@dataclass
class Report:
    rows: int = 0
    written: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    committed: bool = False


def column_map(tv: TableView, headers: list[str]) -> tuple[dict[int, str], list[str]]:
    """Header cells → form fields, by name or by title in either language; unknown headers reported."""
    known: dict[str, str] = {}
    for name in tv.view["form_fields"]:
        f = tv.fields[name]
        for key in (name, f.title, *dict(f.titles).values()):
            known[key.strip().lower()] = name
    mapping, unknown = {}, []
    for i, h in enumerate(headers):
        key = (h or "").strip().lower()
        if not key:
            continue
        if key in known:
            mapping[i] = known[key]
        elif key not in (tv.pk.lower(), *(x.lower() for x in ("编号", "ID"))):
            unknown.append(h)
    return mapping, unknown


def read_table(filename: str, content: bytes) -> list[list[Any]]:
    """All rows of the first sheet (xlsx) or of the CSV file, header first."""
    if filename.lower().endswith(".xlsx"):
        try:
            wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
            raise CrudError(400, "not a readable .xlsx file") from None
        ws = wb.worksheets[0]
        return [list(r) for r in ws.iter_rows(values_only=True)]
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CrudError(400, "the CSV file is not UTF-8 text") from None
    return [row for row in csv.reader(io.StringIO(text))]


def cell_text(value: Any) -> Any:
    """Spreadsheet cells → what a form would submit (numbers keep their exact text)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


async def run_import(request: Request, tv: TableView, filename: str, content: bytes, mode: str) -> Report:
    table = read_table(filename, content)
    if not table:
        raise CrudError(400, "the file is empty")
    mapping, unknown = column_map(tv, [str(h) if h is not None else "" for h in table[0]])
    if unknown:
        raise CrudError(400, "unknown columns: " + ", ".join(map(str, unknown)))
    body = [r for r in table[1:] if any(c not in (None, "") for c in r)]
    if len(body) > MAX_ROWS:
        raise CrudError(413, f"at most {MAX_ROWS} rows per import")
    report = Report(rows=len(body))
    actor = actor_of(request)
    ctx = ctx_of(request)
    conn_cm = ctx.db.connect()
    async with conn_cm as conn:
        trans = await conn.begin()
        try:
            for n, raw in enumerate(body, start=2):
                data = {name: cell_text(raw[i] if i < len(raw) else None) for i, name in mapping.items()}
                try:
                    await insert_row(ctx, conn, tv, data, actor, strict=False)
                    report.written += 1
                except CrudError as exc:
                    if exc.status >= 500:
                        raise
                    for fname, message in (exc.errors or {"": exc.message}).items():
                        report.errors.append(
                            {
                                "row": n,
                                "field": fname,
                                "column": tv.fields[fname].label(lang_of(request)) if fname else "",
                                "message": message,
                            }
                        )
            if mode == "preview" or (mode == "all" and report.errors):
                await trans.rollback()
                report.written = 0
            else:
                await trans.commit()
                report.committed = True
        except BaseException:
            await trans.rollback()
            raise
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


def import_page(route: Route) -> list[HTTPRouteHandler]:
    """The upload form, and the upload: a report of every row's problems, written or not by mode."""
    tv = route.table

    async def page(request: Request) -> Template:
        return render(request, "import.html", tv=tv, report=None, mode="preview")

    async def upload(request: Request) -> Template:
        form = await request.form()
        file = form.get("file")
        mode = form.get("mode") if form.get("mode") in MODES else "preview"
        if not isinstance(file, UploadFile) or not file.filename:
            return render(
                request,
                "import.html",
                status_code=400,
                tv=tv,
                report=None,
                mode=mode,
                form_error="choose a .xlsx or .csv file",
            )
        content = await file.read(MAX_BYTES + 1)
        try:
            if len(content) > MAX_BYTES:
                raise CrudError(413, "the file is larger than 20 MB")
            report = await run_import(request, tv, file.filename, content, mode)
        except CrudError as exc:
            return render(
                request, "import.html", status_code=exc.status, tv=tv, report=None, mode=mode, form_error=exc.message
            )
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
