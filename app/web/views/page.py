"""A module's own pages: declared in its module.json (path, methods, handler name), compiled into
manifest routes of kind `page`, and bound here to the handler of that name in its `pages` hook."""
from __future__ import annotations

from litestar import route as litestar_route
from litestar.handlers import HTTPRouteHandler

from app.core.catalog import Catalog
from app.core.hooks import hook
from app.web.views.common import Route


def module_page(route: Route) -> list[HTTPRouteHandler]:
    handler = hook(route.module, "pages").get(route.handler)
    if handler is None:
        raise RuntimeError(f"{route.module}: page {route.path} names handler {route.handler!r}, "
                           "which its pages hook does not have")
    return [litestar_route(route.path, http_method=list(route.methods), name=f"{route.module}.{route.handler}",
                           include_in_schema=False)(handler)]


def check_pages_declared(catalog: Catalog) -> None:
    """A page handler its module.json does not declare would never be served: say so at startup."""
    declared = {(r["module"], r["handler"]) for r in catalog.routes if r["kind"] == "page"}
    for module in catalog.modules:
        missing = sorted(set(hook(module["name"], "pages")) - {h for m, h in declared if m == module["name"]})
        if missing:
            raise RuntimeError(f"{module['name']}: pages {missing} are not declared in its module.json")
