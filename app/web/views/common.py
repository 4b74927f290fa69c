"""What every kind of view shares: who acts, what they may open, how a cell and a form value
read, and how a CRUD error shows on a page."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from litestar import Request
from litestar.response import Response

from app.core.catalog import TableView
from app.core.context import AppContext, ctx_of
from app.crud.query import lookup_options
from app.crud.rows import Actor, CrudError, jsonable
from app.crud.store import get_row
from app.web.errors import error_response
from app.web.formatting import as_datetime, cell, local_time, typed_time


@dataclass(frozen=True)
class Route:
    """One manifest route as its factory gets it: the path in Litestar's form (`{id:str}`)."""

    kind: str
    path: str
    methods: tuple[str, ...]
    module: str
    tv: TableView | None = None
    action: str = ""
    handler: str = ""

    @property
    def table(self) -> TableView:
        """The table of a table route (every kind but a module's `page`)."""
        if self.tv is None:
            raise TypeError(f"{self.kind} route {self.path} has no table")
        return self.tv


def actor_of(request: Request) -> Actor:
    """The signed-in user as the store records them (audit rows, `created_by`)."""
    from app.auth.principal import principal_of

    p = principal_of(request)
    return Actor(p.user_id, p.username, request.client.host if request.client else None)


def can(request: Request, path: str) -> bool:
    """Whether the user's grants open `path`: pages show only the links and buttons that work."""
    from app.auth.principal import principal_of

    return principal_of(request).allows(path)


async def row_or_404(ctx: AppContext, tv: TableView, row_id: str) -> dict[str, Any]:
    row = await get_row(ctx, tv, row_id)
    if row is None:
        raise CrudError(404, "not found")
    return row


def display(tv: TableView, texts: dict[str, dict[str, str]], lang: str,
            tz_name: str = "UTC") -> Callable[[str, dict], str]:
    """How a cell reads: choice titles, the lookup text (the row's own snapshot of it first),
    money, unit prices and times as `app.web.formatting` shows them (times in `tz_name`)."""
    snapshots = {c.field: c.snapshot for c in tv.spec.codes if c.snapshot}

    def show(name: str, row: dict) -> str:
        value = row.get(name)
        if value is None:
            return ""
        f = tv.fields[name]
        if f.choices:
            for c in f.choices:
                if c.value == str(value):
                    return c.label(lang)
        if name in snapshots and row.get(snapshots[name]):
            return str(row[snapshots[name]])
        if name in texts:
            return texts[name].get(str(value), str(value))
        shown = cell(f, value, row, lang, tz_name)
        return shown if shown is not None else str(jsonable(value))

    return show


def form_values(tv: TableView, row: dict, tz_name: str = "UTC") -> dict[str, str]:
    """Row → strings the form's inputs show: times in `tz_name` (the business zone, as the
    record page shows them), with the `T` datetime-local wants."""
    out = {}
    for name, value in row.items():
        if value is None or name in tv.view["confidential"]:
            continue
        text = str(jsonable(value))
        if tv.fields[name].is_datetime:
            when = as_datetime(value)
            text = (local_time(when, tz_name) if when is not None else text).replace(" ", "T")
        out[name] = text
    return out


def typed_values(tv: TableView, data: dict[str, Any], tz_name: str) -> dict[str, Any]:
    """A form's submitted values for the store: times typed in `tz_name` as naive UTC."""
    return {k: typed_time(v, tz_name) if isinstance(v, str) and v.strip() and tv.fields[k].is_datetime else v
            for k, v in data.items()}


async def lookup_choices(
    request: Request, tv: TableView, names: list[str], current: dict[str, Any], limit: int
) -> dict[str, list[dict]]:
    """The first options of each lookup field in `names`, plus its current value so it stays selected."""
    ctx = ctx_of(request)
    options = {}
    for name in names:
        if name not in tv.view["lookups"]:
            continue
        opts = await lookup_options(ctx, tv, name, "", limit=limit)
        value = current.get(name)
        if value not in (None, "") and all(o["value"] != value for o in opts):
            opts = await lookup_options(ctx, tv, name, str(value), limit=1) + opts
        options[name] = opts
    return options


def heading_of(tv: TableView, row: dict) -> str:
    """A row's name for headings: its name, code, username or title, else its key."""
    for name in ("name", "code", "username", "title"):
        if row.get(name):
            return str(row[name])
    return str(row.get(tv.pk, ""))


def crud_error_handler(request: Request, exc: CrudError) -> Response:
    """JSON for the API; for pages, the same error as a small HTML page."""
    if request.url.path.startswith("/api/") or "json" in request.headers.get("accept", ""):
        return error_response(exc.status, exc.message, exc.errors)
    return error_page(exc)


def error_page(exc: CrudError) -> Response:
    items = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in exc.errors.items())
    html = (
        f"<!doctype html><meta charset=utf-8><link rel=stylesheet href=/static/app.css><title>{exc.status}</title>"
        f"<main><h1>{exc.status}</h1><p>{escape(exc.message)}</p><ul>{items}</ul>"
        f"<p><a href='javascript:history.back()'>←</a> <a href='/'>Home</a></p></main>"
    )
    return Response(content=html, status_code=exc.status, media_type="text/html")
