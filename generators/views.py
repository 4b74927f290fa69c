"""CRUD view files, the ecosystem's format, checked against the specs and made runtime options.

A view file (`modules/<module>/views/<table>.json`: tblname, title, params) is normalised into
the data the runtime reads, the way Django's `ModelAdmin` keeps view options as data. Every key
of the ecosystem's real format either takes effect or is named in a warning; a field reference
the specs cannot satisfy (sortby, subtables[].field, data_filter, ...) is an error. A table
without a view file gets sensible defaults, so a new table is a new spec file and nothing else.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from generators.loader import read_json
from generators.order_indexes import order_key, order_problems, why_unindexable
from generators.spec import SpecError, SpecWarning, TableSpec
from generators.spec_types import suggestion
from generators.view_parts import Findings, actions, as_list, browserfields, data_filter, ordering, subtables

SYSTEM_FIELDS = ("created_at", "updated_at", "created_by")
RBAC_FOLDER = "rbac"
"""models/rbac holds the shared RBAC database's tables: the platform's, no list pages of ours."""
GENERATOR_KEYS = ("models_dir", "output_dir", "dbname")
"""The ecosystem generator's own settings (where to read specs, write pages, which database)."""
TOP_KEYS = {"tblname", "title", "titles", "params", "subtables", "uitype", "alias", *GENERATOR_KEYS}
URL_KEYS = ("new_data_url", "update_data_url", "delete_data_url", "get_data_url", "data_url")
TREE_KEYS = ("idField", "textField", "parentField")
PARAM_KEYS = {
    "sortby", "sort", "confidential_fields", "logined_userid", "logined_userorgid", "browserfields",
    "editexclouded", "edit_exclouded_fields", "editfields", "subtables", "record_toolbar", "toolbar",
    "binds", "noedit", "editable", "search_fields", "searchfields", "filter_fields", "range_fields",
    "page_rows", "menu", "internal", "big", "sortable", "title", "data_filter", "relation", "editor", "ordering",
    *URL_KEYS,
    *TREE_KEYS,
}


@dataclass
class ViewCheck:
    """A view file's runtime options, the field titles it renames, and what was found."""

    options: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecWarning] = field(default_factory=list)


def _sort(params: dict, spec: TableSpec, f: Findings) -> list[str]:
    names = [x.name for x in spec.fields]
    given = as_list(params.get("sortby") or params.get("sort"))
    default = [f"-{'created_at' if 'created_at' in names else spec.primary[0]}"]
    sort = []
    for item in given or default:
        for part in str(item).split(","):
            part = part.strip()
            name = part.lstrip("-").split(" ")[0]
            desc = part.startswith("-") or part.lower().endswith(" desc")
            if f.fields(spec, [name], "sortby"):
                sort.append(("-" if desc else "") + name)
    return sort


def _sortable(params: dict, spec: TableSpec, list_fields: list[str], f: Findings) -> list[str]:
    """The columns a list may be sorted by: the view's `sortable` list (each must be indexable,
    `order_problems`), else every list column an index can order (on a `big` table only the
    non-null ones)."""
    if params.get("sortable") is not None:
        return f.fields(spec, as_list(params["sortable"]), "sortable")
    return [n for n in list_fields if (not params.get("big") or not spec.field(n).nullable)
            and why_unindexable(spec, order_key(spec, [n])) is None]


def _page_rows(value: Any, f: Findings) -> int:
    try:
        return int(value or 20)
    except (TypeError, ValueError):
        f.error(f"page_rows must be a whole number, not {value!r}")
        return 20


def _logined(params: dict, spec: TableSpec, f: Findings) -> dict[str, str]:
    """Which fields hold the logged-in user's id and org: logined_* keys, or data_filter."""
    logined = {k: params[k] for k in ("logined_userid", "logined_userorgid") if params.get(k)}
    f.fields(spec, list(logined.values()), "logined field")
    for key, name in data_filter(params.get("data_filter"), spec, f).items():
        if logined.setdefault(key, name) != name:
            f.error(f"data_filter puts the {key[8:]} in {name}, {key} in {logined[key]}", name)
    return logined


def _edit_fields(params: dict, spec: TableSpec, f: Findings) -> list[str] | None:
    """editfields: the form's fields in order ({field, ...} entries or names), if given."""
    if params.get("editfields") is None:
        return None
    entries = as_list(params["editfields"])
    chosen = f.fields(spec, [e.get("field") if isinstance(e, dict) else e for e in entries], "editfields")
    extra = sorted({k for e in entries if isinstance(e, dict) for k in e} - {"field"})
    if extra:
        f.warn(f"editfields: {', '.join(extra)} ignored: the form takes them from the spec")
    return chosen


def _not_here(raw: dict, params: dict, spec: TableSpec, f: Findings) -> None:
    """Keys read but without effect here, each named once; their field references still checked."""
    present = [k for k in GENERATOR_KEYS if k in raw]
    if present:
        f.warn(f"{', '.join(present)} ignored: the ecosystem generator's settings; this app serves the view "
               f"from its own database")
    if raw.get("alias"):
        f.warn(f"alias {raw['alias']!r} is ignored: the pages are served at /<module>/{spec.name}")
    tree = [k for k in TREE_KEYS if params.get(k)]
    f.fields(spec, [params[k] for k in tree], "tree field")
    if raw.get("uitype") or tree:
        f.warn(f"uitype {raw.get('uitype') or 'tree'!r} ({', '.join(tree) or 'no tree fields'}) is shown as a "
               f"plain list here")
    relation = params.get("relation")
    if relation:
        if isinstance(relation, dict):
            f.fields(spec, [relation.get("outter_field"), relation.get("param_field")], "relation")
        f.warn("relation is shown as a plain list of rows (the ecosystem's check-list editor is not built here)")
    editable = params.get("editable")
    urls = [k for k in URL_KEYS if params.get(k)] + (
        [f"editable.{k}" for k in editable] if isinstance(editable, dict) else [])
    if urls:
        f.warn(f"{', '.join(urls)} ignored: this app serves the pages and the JSON API of the table itself")
    if params.get("editor"):
        f.warn("editor is ignored: the forms are built from the spec (types, choices, codes, widgets)")
    for where, obj, known in (("view", raw, TOP_KEYS), ("params", params, PARAM_KEYS)):
        for key in sorted(set(obj) - known):
            hint = suggestion(key, sorted(known))
            f.warn(f"unknown {where} key {key!r} is ignored" + (f" ({hint})" if hint else ""))


def check_view(spec: TableSpec, raw: Any, source: str, specs: dict[str, TableSpec] | None = None) -> ViewCheck:
    """Ecosystem view definition (or none) → the runtime's view options, checked against the spec
    (and the subtables' specs, given `specs`)."""
    f = Findings(source, spec.name)
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        f.error("a view file must be an object (tblname, title, params)")
        raw = {}
    if raw.get("tblname") not in (None, spec.name):
        f.error(f"tblname {raw['tblname']!r} is not the table of this view, {spec.name}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        f.error("params must be an object")
        params = {}
    _not_here(raw, params, spec, f)
    names = [x.name for x in spec.fields]
    browser = browserfields(params.get("browserfields"), spec, f)
    confidential = f.fields(spec, as_list(params.get("confidential_fields")), "confidential_fields")
    edit_excluded = f.fields(spec, as_list(params.get("editexclouded")) + as_list(params.get("edit_exclouded_fields")),
                             "editexclouded")
    logined = _logined(params, spec, f)
    sort = _sort(params, spec, f)
    list_fields = [n for n in (browser.order or names) if n not in browser.hidden and n not in confidential]
    readonly = [x.name for x in spec.fields if x.readonly]
    chosen = _edit_fields(params, spec, f)
    form_fields = [
        n for n in (chosen if chosen is not None else names)
        if n not in edit_excluded and n not in readonly and n not in logined.values()
        and n not in SYSTEM_FIELDS and not (n in spec.primary and n == "id")
    ]
    search = f.fields(spec, as_list(params.get("search_fields") or params.get("searchfields")), "search_fields") or [
        n for n in list_fields if spec.field(n).is_string and n not in spec.primary
        and not spec.code_for(n) and not spec.field(n).choices
    ]
    filters = f.fields(spec, as_list(params.get("filter_fields")), "filter_fields") or [
        n for n in list_fields if spec.field(n).choices or spec.code_for(n)
    ]
    ranges = f.fields(spec, as_list(params.get("range_fields")), "range_fields")
    subs = subtables(as_list(params.get("subtables")) + as_list(raw.get("subtables")), specs, f)
    editable = params.get("editable")
    options = {
        "title": raw.get("title") or params.get("title") or spec.title,
        "titles": raw.get("titles") or dict(spec.titles),
        "sort": sort,
        "list_fields": list_fields,
        "form_fields": form_fields,
        "confidential": confidential,
        "search_fields": search,
        "filter_fields": filters,
        "range_fields": ranges,
        "subtables": subs,
        "actions": actions(params, f),
        "ordering": ordering(params.get("ordering"), spec, f),
        "logined": logined,
        "noedit": bool(params.get("noedit", False)) or editable is False,
        "page_rows": _page_rows(params.get("page_rows"), f),
        "menu": params.get("menu", True),
        "internal": bool(params.get("internal", False)),
        "lookups": [c.field for c in spec.codes if c.is_plain_table],
        "big": bool(params.get("big", False)),
        "sortable": _sortable(params, spec, list_fields, f),
    }
    return ViewCheck(options, browser.labels, f.errors + order_problems(spec, options, source), f.warnings)


def view_table(raw: Any, path_stem: str) -> str:
    """The table a view file is for: its tblname, else its file name."""
    name = raw.get("tblname") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else path_stem


def labelled(spec: TableSpec, labels: dict[str, str]) -> TableSpec:
    """`spec` with the field titles its view renames (browserfields alters or column titles)."""
    if not labels:
        return spec
    return replace(spec, fields=tuple(replace(x, title=labels.get(x.name, x.title)) for x in spec.fields))


def views_near(specs: Iterable[TableSpec]) -> dict[str, dict[str, Any]]:
    """The view options of specs read from `<root>/models/<module>/`: their view files in
    `<root>/modules/<module>/views/` (or the defaults a table without one gets), as the manifest
    has them. Specs elsewhere, and the RBAC tables, get none."""
    specs = list(specs)
    by_name = {s.name: s for s in specs}
    out = {}
    for spec in specs:
        folder = Path(spec.source).parent
        if folder.parent.name != "models" or folder.name == RBAC_FOLDER:
            continue
        path = folder.parent.parent / "modules" / folder.name / "views" / f"{spec.name}.json"
        try:
            out[spec.name] = check_view(spec, read_json(path) if path.exists() else None, str(path), by_name).options
        except SpecError:
            continue
    return out
