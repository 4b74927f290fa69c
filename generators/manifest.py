"""The CRUD route manifest: modules, their tables, view options and every route the app serves,
and the RBAC tables it logs in against.

View options come from the ecosystem's CRUD view files (`modules/<module>/views/<table>.json`),
checked and normalised by `generators.views`; a table without one gets sensible defaults.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators.loader import read_json
from generators.raw_spec import spec_to_raw
from generators.spec import SpecError, SpecWarning, TableSpec, raise_all
from generators.view_parts import as_list
from generators.views import check_view, labelled


# Every route a table gets: (kind, under the page base or the API base, path suffix, methods,
# only when the table is writable). The web layer has one handler factory per kind.
TABLE_ROUTES: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    ("list", "page", "", ("GET",), False),
    ("record", "page", "/{id}", ("GET",), False),
    ("api_list", "api", "", ("GET",), False),
    ("api_get", "api", "/{id}", ("GET",), False),
    ("export_csv", "page", "/export.csv", ("GET",), False),
    ("export_xlsx", "page", "/export.xlsx", ("GET",), False),
    ("create", "page", "/new", ("GET", "POST"), True),
    ("edit", "page", "/{id}/edit", ("GET", "POST"), True),
    ("delete", "page", "/{id}/delete", ("GET", "POST"), True),
    ("api_create", "api", "", ("POST",), True),
    ("api_write", "api", "/{id}", ("PUT", "PATCH", "DELETE"), True),
    ("import", "page", "/import", ("GET", "POST"), True),
    ("import_template", "page", "/import_template.xlsx", ("GET",), True),
    ("bulk", "page", "/bulk", ("POST",), True),
    ("api_bulk", "api", "/bulk", ("POST",), True),
)
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
PAGE_KEYS = {"path", "methods", "handler"}


def table_routes(module: str, table: str, view: dict) -> list[dict]:
    """Every route one table gets: HTML pages and the JSON API, with the permission path of each."""
    bases = {"page": f"/{module}/{table}", "api": f"/api/{module}/{table}"}
    routes = [{"path": bases[under] + suffix, "methods": list(methods), "kind": kind}
              for kind, under, suffix, methods, writable_only in TABLE_ROUTES
              if not (writable_only and view["noedit"])]
    if view.get("lookups"):
        routes.append({"path": f"{bases['api']}/_lookup/{{field}}", "methods": ["GET"], "kind": "lookup"})
    if view.get("ordering") and not view["noedit"]:
        routes += [{"path": f"{bases['page']}/{{id}}/move", "methods": ["POST"], "kind": "move"},
                   {"path": f"{bases['api']}/{{id}}/move", "methods": ["POST"], "kind": "api_move"}]
    for act in view["actions"]:
        for kind, under in (("action", "page"), ("api_action", "api")):
            routes.append({"path": f"{bases[under]}/{{id}}/{act['name']}", "methods": ["POST"], "kind": kind,
                           "action": act["name"]})
    for r in routes:
        r.update(module=module, table=table)
    return routes


def page_routes(module: str, pages: Any, source: str) -> list[dict]:
    """A module's own pages (`pages` in its module.json): served by the handler of that name in
    the module's `pages` hook, at a path inside the module."""
    routes = []
    for page in as_list(pages):
        if not isinstance(page, dict) or set(page) != PAGE_KEYS:
            raise SpecError(source, module, None, f"a page has exactly the keys {sorted(PAGE_KEYS)}")
        path, methods, handler = page["path"], as_list(page["methods"]), page["handler"]
        if not isinstance(path, str) or not path.startswith(f"/{module}/"):
            raise SpecError(source, module, None, f"page path {path!r} is not under /{module}/")
        if not methods or not set(methods) <= HTTP_METHODS:
            raise SpecError(source, module, None, f"page {path}: methods must be some of {sorted(HTTP_METHODS)}")
        if not isinstance(handler, str) or not handler.isidentifier():
            raise SpecError(source, module, None, f"page {path}: handler must be a Python name")
        routes.append({"path": path, "methods": list(methods), "kind": "page", "module": module, "handler": handler})
    return routes


def check_unique(routes: list[dict]) -> None:
    """Two routes on one method and path would leave one of them unreachable."""
    seen: set[tuple[str, str]] = set()
    for r in routes:
        for method in r["methods"]:
            if (method, r["path"]) in seen:
                raise SpecError(r["module"], r.get("table"), None, f"two routes for {method} {r['path']}")
            seen.add((method, r["path"]))


def compile_manifest(root: Path, specs: list[TableSpec]) -> tuple[dict, list[SpecWarning]]:
    """Modules (from `models/<module>/` folders and `modules/<module>/module.json`) → manifest dict,
    and the warnings of the view files. Every view file's errors are raised together."""
    by_name = {s.name: s for s in specs}
    modules, tables, routes = [], {}, []
    errors: list[SpecError] = []
    warnings: list[SpecWarning] = []
    for folder in sorted(p for p in (root / "models").iterdir() if p.is_dir() and p.name != "rbac"):
        mod_file = root / "modules" / folder.name / "module.json"
        mod = read_json(mod_file) if mod_file.exists() else {}
        names = sorted({s.name for s in specs if Path(s.source).parent == folder})
        order = [t for t in mod.get("tables", []) if t in names] + [t for t in names if t not in mod.get("tables", [])]
        for t in order:
            view_file = root / "modules" / folder.name / "views" / f"{t}.json"
            check = check_view(by_name[t], read_json(view_file) if view_file.exists() else None,
                               str(view_file), by_name)
            errors += check.errors
            warnings += check.warnings
            view = check.options
            tables[t] = {"module": folder.name, "spec": spec_to_raw(labelled(by_name[t], check.labels)),
                         "view": view}
            if not view["internal"]:
                routes.extend(table_routes(folder.name, t, view))
        routes.extend(page_routes(folder.name, mod.get("pages"), str(mod_file)))
        modules.append({"name": folder.name, "title": mod.get("title", folder.name),
                        "titles": mod.get("titles", {}), "tables": order, "menu": mod.get("menu", True)})
    raise_all(errors)
    check_unique(routes)
    return {"modules": modules, "tables": tables, "routes": routes}, warnings


def rbac_tables(specs: list[TableSpec]) -> dict:
    """The RBAC schema's tables, apart from the app's: they live in the shared RBAC database."""
    return {s.name: {"spec": spec_to_raw(s)} for s in specs}


def write_manifest(root: Path, specs: list[TableSpec], out: Path,
                   rbac_specs: list[TableSpec]) -> tuple[dict, list[SpecWarning]]:
    """build/manifest.json: the app's modules, tables and routes, and the RBAC tables; and the
    view files' warnings."""
    manifest, warnings = compile_manifest(root, specs)
    manifest |= {"rbac_tables": rbac_tables(rbac_specs)}
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest, warnings
