"""What every kind of view shares: who acts, what they may open, how a cell and a form value
read, and how a CRUD error shows on a page."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.response import Response

from app.core.i18n import Msg
from app.core.catalog import TableView
from app.core.context import AppContext, ctx_of
from app.crud.lookups import lookup_selected
from app.crud.rows import Actor, CrudError, jsonable
from app.crud.store import get_row
from app.web.errors import error_reply
from app.web.formatting import as_datetime, cell, local_time, typed_time
from app.web.permits import may


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


def can(request: Request, path: str, method: str | None = None) -> bool:
    """Whether the user's grants open `method path`: pages show only the links and buttons that work."""
    return may(request, path, method)


async def row_or_404(ctx: AppContext, tv: TableView, row_id: str) -> dict[str, Any]:
    row = await get_row(ctx, tv, row_id)
    if row is None:
        raise CrudError(404, Msg('not found'))
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


async def picked_options(
    request: Request, tv: TableView, names: list[str], current: dict[str, Any]
) -> dict[str, dict]:
    """The chosen option of each lookup field in `names` that has a value: what its picker shows
    (the options themselves come from the lookup route as the user types)."""
    ctx = ctx_of(request)
    picked = {}
    for name in names:
        value = current.get(name)
        if name in tv.view["lookups"] and value not in (None, ""):
            option = await lookup_selected(ctx, tv, name, value)
            if option is not None:
                picked[name] = option
    return picked


def heading_of(tv: TableView, row: dict) -> str:
    """A row's name for headings: its name, code, username or title, else its key."""
    for name in ("name", "code", "username", "title"):
        if row.get(name):
            return str(row[name])
    return str(row.get(tv.pk, ""))


def crud_error_handler(request: Request, exc: CrudError) -> Response:
    """JSON for the API; for pages, the same error as a page in the app's layout."""
    return error_reply(request, exc.status, exc.message, exc.errors)
