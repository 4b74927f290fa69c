"""Where a row belongs: the parent record it is shown under (a step under its pipeline), for
breadcrumbs with readable names and for returning to the parent after saving a child.

The parent is read from the views' `subtables` (the compiled manifest), so any table shown as a
subtable gets this without code of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request

from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.store import get_row
from app.web.ui import lang_of
from app.web.views.common import can, heading_of


@dataclass(frozen=True)
class Parent:
    """The row a child row is shown under, and the child column that points at it."""

    tv: TableView
    field: str
    row_id: str

    @property
    def href(self) -> str:
        return f"{self.tv.base}/{self.row_id}"


def parent_of(request: Request, tv: TableView, values: dict[str, Any], prefer: str = "") -> Parent | None:
    """The first table listing `tv` as a subtable whose link column `values` fills (`prefer` first:
    the column the form was opened with, e.g. `?pipeline_id=…` from the pipeline's page)."""
    found = []
    for ptv in ctx_of(request).catalog.tables.values():
        for sub in ptv.view["subtables"]:
            if sub["table"] == tv.name and values.get(sub["field"]) not in (None, ""):
                found.append(Parent(ptv, sub["field"], str(values[sub["field"]])))
    found.sort(key=lambda p: p.field != prefer)
    return found[0] if found else None


async def crumbs_of(request: Request, tv: TableView, row: dict[str, Any] | None,
                    parent: Parent | None = None) -> list[dict[str, str]]:
    """Links above a page's heading: the parent's list and record by name, then this table
    (under the parent, its rows of that parent), each only where the user may open it."""
    lang = lang_of(request)
    parent = parent or (parent_of(request, tv, row) if row else None)
    out: list[dict[str, str]] = []
    if parent is not None:
        prow = await get_row(ctx_of(request), parent.tv, parent.row_id)
        if prow is not None:
            out.append({"href": parent.tv.base, "text": parent.tv.title(lang)})
            out.append({"href": parent.href, "text": heading_of(parent.tv, prow)})
            out.append({"href": f"{tv.base}?{parent.field}={parent.row_id}", "text": tv.title(lang)})
    if not out:
        out.append({"href": tv.base, "text": tv.title(lang)})
    return [c for c in out if can(request, c["href"].split("?")[0])]
