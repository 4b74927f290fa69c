"""The compiled manifest is the one source of routes: what the app serves for tables and modules
is exactly build/manifest.json's `routes`, and a factory that serves more or less stops the app."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from app.auth.rbac import permission_path
from app.core.config import ROOT, load_settings
from app.web.app import create_app
from app.web.views import routes as view_routes
from generators.manifest import check_unique, page_routes, table_routes
from generators.spec import SpecError

MANIFEST = json.loads((ROOT / "build" / "manifest.json").read_text())
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def manifest_routes() -> set[tuple[str, str]]:
    return {(method, r["path"]) for r in MANIFEST["routes"] for method in r["methods"]}


def served_module_routes(app) -> set[tuple[str, str]]:
    """(method, permission path) of everything the app serves under a module's pages or API."""
    prefixes = tuple(p for m in MANIFEST["modules"] for p in (f"/{m['name']}/", f"/api/{m['name']}/"))
    return {(method, permission_path(route.path)) for route in app.routes
            for method in getattr(route, "methods", set()) - IGNORED_METHODS
            if route.path.startswith(prefixes)}


@pytest.fixture(scope="module")
def app():
    return create_app(load_settings())


def test_the_app_serves_exactly_the_manifest_routes(app):
    served, listed = served_module_routes(app), manifest_routes()
    assert served == listed, {"served, not in the manifest": sorted(served - listed),
                              "in the manifest, not served": sorted(listed - served)}
    kinds = {r["kind"] for r in MANIFEST["routes"]}
    assert kinds <= set(view_routes.FACTORIES), kinds - set(view_routes.FACTORIES)
    assert {"list", "record", "create", "edit", "api_write", "action", "page"} <= kinds


def test_module_pages_come_from_module_json(app):
    declared = json.loads((ROOT / "modules" / "pipeline_ops" / "module.json").read_text())["pages"]
    assert [(p["path"], p["methods"]) for p in declared] == [("/pipeline_ops/usage_daily", ["GET"])]
    assert ("GET", "/pipeline_ops/usage_daily") in served_module_routes(app)
    assert {"path": "/pipeline_ops/usage_daily", "methods": ["GET"], "kind": "page", "module": "pipeline_ops",
            "handler": "usage_daily"} in MANIFEST["routes"]


def wrapped(monkeypatch, kind: str, change) -> None:
    """Make the factory of `kind` return `change(route, its handlers)` instead."""
    factory = view_routes.FACTORIES[kind]
    monkeypatch.setitem(view_routes.FACTORIES, kind, lambda route: change(route, factory(route)))


def test_a_factory_that_adds_a_route_stops_the_app(monkeypatch):
    from litestar import get

    async def extra() -> str:
        return "extra"

    wrapped(monkeypatch, "list", lambda route, made: [*made, get(route.path + "/extra", name=route.path)(extra)])
    with pytest.raises(RuntimeError, match="'list' factory serves"):
        create_app(load_settings())


def test_a_factory_that_drops_a_route_stops_the_app(monkeypatch):
    wrapped(monkeypatch, "api_write", lambda route, made: [h for h in made if "DELETE" not in h.http_methods])
    with pytest.raises(RuntimeError, match="'api_write' factory serves"):
        create_app(load_settings())


def test_a_page_its_module_does_not_declare_stops_the_app(app):
    catalog = app.state.ctx.catalog
    undeclared = dataclasses.replace(catalog, routes=[r for r in catalog.routes
                                                      if (r["kind"], r["module"]) != ("page", "pipeline_ops")])
    with pytest.raises(RuntimeError, match=r"pipeline_ops: pages \['usage_daily'\] are not declared"):
        view_routes.handlers(undeclared)


def test_a_declared_page_without_its_handler_stops_the_app(app):
    catalog = app.state.ctx.catalog
    routes = [{**r, "handler": "nope"} if r["kind"] == "page" else r for r in catalog.routes]
    with pytest.raises(RuntimeError, match="names handler 'nope'"):
        view_routes.handlers(dataclasses.replace(catalog, routes=routes, modules=[]))


# ---- the compiler's side -----------------------------------------------------------------

SOURCE = str(Path("modules/m/module.json"))


@pytest.mark.parametrize(("page", "message"), [
    ({"path": "/other/x", "methods": ["GET"], "handler": "x"}, "is not under /m/"),
    ({"path": "/m/x", "methods": ["FETCH"], "handler": "x"}, "methods must be some of"),
    ({"path": "/m/x", "methods": [], "handler": "x"}, "methods must be some of"),
    ({"path": "/m/x", "methods": ["GET"], "handler": "not a name"}, "handler must be a Python name"),
    ({"path": "/m/x", "methods": ["GET"]}, "exactly the keys"),
    ({"path": "/m/x", "methods": ["GET"], "handler": "x", "title": "X"}, "exactly the keys"),
])
def test_a_bad_page_declaration_is_a_spec_error(page, message):
    with pytest.raises(SpecError, match=message):
        page_routes("m", [page], SOURCE)


def test_page_routes_name_their_module_and_handler():
    assert page_routes("m", [{"path": "/m/x/{id}", "methods": ["GET", "POST"], "handler": "x"}], SOURCE) == [
        {"path": "/m/x/{id}", "methods": ["GET", "POST"], "kind": "page", "module": "m", "handler": "x"}]
    assert page_routes("m", None, SOURCE) == []


def test_two_routes_on_one_method_and_path_are_a_spec_error():
    view = {"noedit": True, "lookups": [], "actions": []}
    listed = table_routes("m", "t", view)
    check_unique(listed)
    clash = page_routes("m", [{"path": "/m/t", "methods": ["POST", "GET"], "handler": "x"}], SOURCE)
    with pytest.raises(SpecError, match="two routes for GET /m/t"):
        check_unique(listed + clash)


def test_a_read_only_table_gets_no_write_routes():
    kinds = {r["kind"] for r in table_routes("m", "t", {"noedit": True, "lookups": [], "actions": []})}
    assert kinds == {"list", "record", "api_list", "api_get", "export_csv", "export_xlsx"}
    writable = table_routes("m", "t", {"noedit": False, "lookups": ["f"], "actions": [{"name": "go"}]})
    assert {r["kind"] for r in writable} - kinds == {
        "create", "edit", "delete", "api_create", "api_write", "import", "import_template", "bulk", "api_bulk",
        "lookup", "action", "api_action"}
