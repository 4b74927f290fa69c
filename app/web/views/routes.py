"""The one place that registers the manifest's routes: each route of `catalog.routes` goes to the
factory of its kind, and a factory must serve exactly the methods and path its route lists, so
what the app serves for tables and modules is the compiled manifest, no more and no less."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from litestar.handlers import HTTPRouteHandler

from app.core.catalog import Catalog
from app.web.views.actions import action_page
from app.web.views.api import API_KINDS, api_routes
from app.web.views.bulk import bulk_page
from app.web.views.common import Route
from app.web.views.delete import delete_page
from app.web.views.export import export_csv, export_xlsx
from app.web.views.form import create_page, edit_page
from app.web.views.importer import import_page, import_template
from app.web.views.list import list_page
from app.web.views.move import move_page
from app.web.views.page import check_pages_declared, module_page
from app.web.views.record import record_page

Factory = Callable[[Route], list[HTTPRouteHandler]]

FACTORIES: dict[str, Factory] = {
    "list": list_page,
    "record": record_page,
    "create": create_page,
    "edit": edit_page,
    "delete": delete_page,
    "export_csv": export_csv,
    "export_xlsx": export_xlsx,
    "import": import_page,
    "import_template": import_template,
    "bulk": bulk_page,
    "action": action_page,
    "move": move_page,
    "page": module_page,
    **{kind: api_routes for kind in API_KINDS},
}

_PARAM = re.compile(r"\{(\w+)\}")


def route_of(catalog: Catalog, spec: dict[str, Any]) -> Route:
    """A manifest route (`/t/{id}`, the permission path) → the factory's view of it (`/t/{id:str}`)."""
    return Route(
        kind=spec["kind"],
        path=_PARAM.sub(r"{\1:str}", spec["path"]),
        methods=tuple(spec["methods"]),
        module=spec["module"],
        tv=catalog.tables[spec["table"]] if "table" in spec else None,
        action=spec.get("action", ""),
        handler=spec.get("handler", ""),
    )


def served(handlers: list[HTTPRouteHandler]) -> set[tuple[str, str]]:
    return {(method, path) for h in handlers for method in h.http_methods for path in h.paths}


def handlers(catalog: Catalog) -> list[HTTPRouteHandler]:
    """Every handler of the manifest's routes, in the manifest's order."""
    check_pages_declared(catalog)
    out: list[HTTPRouteHandler] = []
    for spec in catalog.routes:
        route = route_of(catalog, spec)
        factory = FACTORIES.get(route.kind)
        if factory is None:
            raise RuntimeError(f"no handler factory for route kind {route.kind!r} ({route.path}): rebuild?")
        made = factory(route)
        wanted = {(method, route.path) for method in route.methods}
        if served(made) != wanted:
            raise RuntimeError(f"the {route.kind!r} factory serves {sorted(served(made))}, "
                               f"the manifest lists {sorted(wanted)}")
        out += made
    return out
