"""The CRUD route manifest: modules, their tables, view options and every route the app serves,
and the RBAC tables it logs in against.

View options follow the ecosystem's CRUD view definitions (`modules/<module>/views/<table>.json`,
keys as the ecosystem spells them) normalised into data the runtime reads, the way Django's
`ModelAdmin` keeps view options as data. A table without a view file gets sensible defaults,
so a new table is a new spec file and nothing else.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators.loader import read_json
from generators.raw_spec import spec_to_raw
from generators.spec import SpecError, TableSpec

VIEW_PARAM_KEYS = {
    "sortby", "confidential_fields", "logined_userid", "logined_userorgid", "browserfields",
    "editexclouded", "edit_exclouded_fields", "subtables", "record_toolbar", "toolbar", "noedit",
    "relation", "idField", "textField", "editable", "parentField", "binds", "search_fields",
    "filter_fields", "page_rows", "menu", "internal", "range_fields", "big",
}
VIEW_KEYS = {"tblname", "title", "titles", "params", "uitype", "models_dir", "output_dir", "dbname"}
SYSTEM_FIELDS = ("created_at", "updated_at", "created_by")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def normalise_view(spec: TableSpec, raw: dict | None, source: str) -> dict:
    """Ecosystem view definition (or none) → the runtime's view options, checked against the spec."""
    raw = raw or {}
    unknown = sorted(set(raw) - VIEW_KEYS)
    if unknown:
        raise SpecError(source, spec.name, None, f"unknown view key {unknown[0]!r}")
    params = raw.get("params") or {}
    unknown = sorted(set(params) - VIEW_PARAM_KEYS)
    if unknown:
        raise SpecError(source, spec.name, None, f"unknown view param {unknown[0]!r}")
    names = [f.name for f in spec.fields]

    def check(fields: list, what: str) -> list[str]:
        for name in fields:
            if name not in names:
                raise SpecError(source, spec.name, str(name), f"{what} names an unknown field")
        return list(fields)

    browser = params.get("browserfields") or {}
    hidden = check(_as_list(browser.get("exclouded")), "browserfields.exclouded")
    confidential = check(_as_list(params.get("confidential_fields")), "confidential_fields")
    edit_excluded = check(_as_list(params.get("editexclouded")) + _as_list(params.get("edit_exclouded_fields")),
                          "editexclouded")
    logined = {k: params[k] for k in ("logined_userid", "logined_userorgid") if params.get(k)}
    check(list(logined.values()), "logined field")
    sort = []
    for item in _as_list(params.get("sortby")) or ([f"-{'created_at' if 'created_at' in names else spec.primary[0]}"]):
        for part in str(item).split(","):
            part = part.strip()
            name = part.lstrip("-").split(" ")[0]
            desc = part.startswith("-") or part.lower().endswith(" desc")
            check([name], "sortby")
            sort.append(("-" if desc else "") + name)
    list_fields = [n for n in names if n not in hidden and n not in confidential]
    readonly = [f.name for f in spec.fields if f.readonly]
    form_fields = [
        f.name for f in spec.fields
        if f.name not in edit_excluded and f.name not in readonly and f.name not in logined.values()
        and f.name not in SYSTEM_FIELDS and not (f.name in spec.primary and f.name == "id")
    ]
    search = check(_as_list(params.get("search_fields")), "search_fields") or [
        n for n in list_fields if spec.field(n).is_string and n not in spec.primary
        and not spec.code_for(n) and not spec.field(n).choices
    ]
    filters = check(_as_list(params.get("filter_fields")), "filter_fields") or [
        n for n in list_fields if spec.field(n).choices or spec.code_for(n)
    ]
    ranges = check(_as_list(params.get("range_fields")), "range_fields")
    subtables = []
    for sub in _as_list(params.get("subtables")):
        subtables.append({"field": sub["field"], "table": sub["subtable"], "title": sub.get("title", ""),
                          "titles": sub.get("titles", {})})
    actions = []
    for act in _as_list(params.get("record_toolbar")) + _as_list(params.get("toolbar")):
        if isinstance(act, dict) and act.get("name"):
            actions.append({"name": act["name"], "label": act.get("label", act["name"]),
                            "labels": act.get("labels", {}), "confirm": bool(act.get("confirm", False)),
                            "style": act.get("style", "")})
    return {
        "title": raw.get("title") or spec.title,
        "titles": raw.get("titles") or dict(spec.titles),
        "sort": sort,
        "list_fields": list_fields,
        "form_fields": form_fields,
        "confidential": confidential,
        "search_fields": search,
        "filter_fields": filters,
        "range_fields": ranges,
        "subtables": subtables,
        "actions": actions,
        "logined": logined,
        "alters": browser.get("alters") or {},
        "noedit": bool(params.get("noedit", False)),
        "page_rows": int(params.get("page_rows") or 20),
        "menu": params.get("menu", True),
        "internal": bool(params.get("internal", False)),
        "lookups": [c.field for c in spec.codes if c.is_plain_table],
        "big": bool(params.get("big", False)),
        "sortable": [n for n in list_fields if not params.get("big") or not spec.field(n).nullable],
    }


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
    for page in _as_list(pages):
        if not isinstance(page, dict) or set(page) != PAGE_KEYS:
            raise SpecError(source, module, None, f"a page has exactly the keys {sorted(PAGE_KEYS)}")
        path, methods, handler = page["path"], _as_list(page["methods"]), page["handler"]
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


def compile_manifest(root: Path, specs: list[TableSpec]) -> dict:
    """Modules (from `models/<module>/` folders and `modules/<module>/module.json`) → manifest dict."""
    by_name = {s.name: s for s in specs}
    modules, tables, routes = [], {}, []
    for folder in sorted(p for p in (root / "models").iterdir() if p.is_dir() and p.name != "rbac"):
        mod_file = root / "modules" / folder.name / "module.json"
        mod = read_json(mod_file) if mod_file.exists() else {}
        names = sorted({s.name for s in specs if Path(s.source).parent == folder})
        order = [t for t in mod.get("tables", []) if t in names] + [t for t in names if t not in mod.get("tables", [])]
        for t in order:
            view_file = root / "modules" / folder.name / "views" / f"{t}.json"
            view = normalise_view(by_name[t], read_json(view_file) if view_file.exists() else None,
                                  str(view_file))
            tables[t] = {"module": folder.name, "spec": spec_to_raw(by_name[t]), "view": view}
            if not view["internal"]:
                routes.extend(table_routes(folder.name, t, view))
        routes.extend(page_routes(folder.name, mod.get("pages"), str(mod_file)))
        modules.append({"name": folder.name, "title": mod.get("title", folder.name),
                        "titles": mod.get("titles", {}), "tables": order, "menu": mod.get("menu", True)})
    for t in tables.values():
        for sub in t["view"]["subtables"]:
            if sub["table"] not in tables:
                raise SpecError(t["module"], sub["table"], None, "subtable names an unknown table")
    check_unique(routes)
    return {"modules": modules, "tables": tables, "routes": routes}


def rbac_tables(specs: list[TableSpec]) -> dict:
    """The RBAC schema's tables, apart from the app's: they live in the shared RBAC database."""
    return {s.name: {"spec": spec_to_raw(s)} for s in specs}


def write_manifest(root: Path, specs: list[TableSpec], out: Path, rbac_specs: list[TableSpec]) -> dict:
    """build/manifest.json: the app's modules, tables and routes, and the RBAC tables."""
    manifest = compile_manifest(root, specs) | {"rbac_tables": rbac_tables(rbac_specs)}
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
