"""The parts of a CRUD view file that have a structure of their own: browserfields (and their
`alters`), toolbars, subtables and data_filter, each in the ecosystem's real shapes.

Each reader takes a `Findings` recorder: `error` for what cannot work (a field the spec does not
have), `warn` for what is read but has no effect here, naming the key. `generators.views` puts
the parts together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from generators.spec import NAME_RE, SpecError, SpecWarning, TableSpec
from generators.spec_types import suggestion

ACTION_KEYS = {"name", "label", "labels", "confirm", "style"}
LABEL_ALTERS = ("title", "label")
USER_VALUES = {"userid": "logined_userid", "userorgid": "logined_userorgid"}


@dataclass
class Findings:
    """Errors and warnings of one view file, each naming the file, table and field."""

    source: str
    table: str
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecWarning] = field(default_factory=list)

    def error(self, message: str, fieldname: str | None = None, fix: str | None = None) -> None:
        self.errors.append(SpecError(self.source, self.table, fieldname, message, fix))

    def warn(self, message: str, fieldname: str | None = None) -> None:
        self.warnings.append(SpecWarning(self.source, self.table, fieldname, message))

    def fields(self, spec: TableSpec, names: list, what: str) -> list[str]:
        """`names` that are fields of `spec`; every other one is an error naming `what`."""
        known = [f.name for f in spec.fields]
        out = []
        for name in names:
            if isinstance(name, str) and name in known:
                out.append(name)
            else:
                self.error(f"{what} names an unknown field" + ("" if spec.name == self.table
                                                                 else f" of table {spec.name}"),
                           str(name), suggestion(str(name), known))
        return out

    def extra_keys(self, obj: dict, known: set[str], what: str) -> None:
        for key in sorted(set(obj) - known):
            self.warn(f"{what}.{key} is ignored: it has no meaning here")


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclass
class Browser:
    hidden: list[str] = field(default_factory=list)
    order: list[str] | None = None
    """An explicit column list (browserfields as a list of columns), else the spec's order."""
    labels: dict[str, str] = field(default_factory=dict)


def _alters(alters: Any, spec: TableSpec, out: Browser, f: Findings) -> None:
    """browserfields.alters: per-field overrides. A title/label renames the field in this app;
    anything else (column widths, lookup URLs) is named in a warning."""
    if not alters:
        return
    if not isinstance(alters, dict):
        f.error("browserfields.alters must be an object of field → changes")
        return
    for name in f.fields(spec, list(alters), "browserfields.alters"):
        changes = alters[name]
        if not isinstance(changes, dict):
            f.warn("browserfields.alters: ignored, not an object of changes", name)
            continue
        for key, value in changes.items():
            if key in LABEL_ALTERS and isinstance(value, str) and value.strip():
                out.labels[name] = value.strip()
            else:
                f.warn(f"browserfields.alters.{name}.{key} is ignored: the list and forms take it from "
                       f"the spec (its type, codes and widget)", name)


def browserfields(raw: Any, spec: TableSpec, f: Findings) -> Browser:
    """browserfields as {exclouded, alters, cwidth} or as a list of columns ({field, title, width})."""
    out = Browser()
    if raw is None:
        return out
    if isinstance(raw, list):
        columns = [c.get("field") if isinstance(c, dict) else c for c in raw]
        out.order = f.fields(spec, columns, "browserfields")
        entries = [c for c in raw if isinstance(c, dict)]
        for c in entries:
            if isinstance(c.get("title"), str) and c.get("field") in out.order:
                out.labels[c["field"]] = c["title"]
        extra = sorted({k for c in entries for k in c} - {"field", "title"})
        if extra:
            f.warn(f"browserfields[]: {', '.join(extra)} ignored: column widths and looks follow the field types")
        return out
    if not isinstance(raw, dict):
        f.error("browserfields must be an object (exclouded, alters) or a list of columns")
        return out
    out.hidden = f.fields(spec, as_list(raw.get("exclouded")), "browserfields.exclouded")
    _alters(raw.get("alters"), spec, out, f)
    if raw.get("cwidth"):
        f.warn("browserfields.cwidth is ignored: column widths follow the field types")
    f.extra_keys(raw, {"exclouded", "alters", "cwidth"}, "browserfields")
    return out


def _action(raw: Any, where: str, f: Findings) -> dict | None:
    if not isinstance(raw, dict) or not raw.get("name"):
        f.warn(f"{where}: ignored, a tool needs a name")
        return None
    name = raw["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        f.error(f"{where}: action name {name!r} is not an identifier (it becomes part of a URL)")
        return None
    f.extra_keys({k: v for k, v in raw.items() if k != "selected_row"}, ACTION_KEYS, f"{where}[{name}]")
    return {"name": name, "label": raw.get("label", name), "labels": raw.get("labels", {}),
            "confirm": bool(raw.get("confirm", False)), "style": raw.get("style", "")}


def actions(params: dict, f: Findings) -> list[dict]:
    """record_toolbar (a list) and toolbar ({"tools": [...]}, or a list) → the record's actions.

    Each runs the implementation the table's module registers in its `actions` hook. A table
    toolbar tool that does not act on a selected row still becomes an action on one row."""
    out: list[dict] = []
    toolbar = params.get("toolbar")
    if isinstance(toolbar, dict):
        f.extra_keys(toolbar, {"tools"}, "toolbar")
        tools = as_list(toolbar.get("tools"))
    else:
        tools = as_list(toolbar)
    for where, items in (("record_toolbar", as_list(params.get("record_toolbar"))), ("toolbar", tools)):
        for raw in items:
            act = _action(raw, where, f)
            if act is None:
                continue
            if where == "toolbar" and not raw.get("selected_row"):
                f.warn(f"toolbar tool {act['name']!r} acts on no row; here it is an action on one record")
            if any(a["name"] == act["name"] for a in out):
                f.error(f"action {act['name']!r} is given twice")
                continue
            out.append(act)
    if as_list(params.get("binds")):
        f.warn("binds are ignored: they wire the ecosystem's UI events; an action here runs the "
               "implementation of its module's actions hook")
    return out


def subtables(items: list, specs: dict[str, TableSpec] | None, f: Findings) -> list[dict]:
    """subtables[]: {subtable, field, title, titles, url}; `field` is the subtable's column that
    points at this row, checked against the subtable's spec when it is known."""
    out = []
    for i, sub in enumerate(items):
        where = f"subtables[{i}]"
        if not isinstance(sub, dict) or not isinstance(sub.get("subtable"), str) or not sub.get("field"):
            f.error(f"{where} needs subtable and field")
            continue
        table, column = sub["subtable"], sub["field"]
        other = specs.get(table) if specs is not None else None
        if specs is not None and other is None:
            f.error(f"{where} names table {table!r}, which has no spec here", None,
                    suggestion(table, sorted(specs)))
            continue
        if other is not None and not f.fields(other, [column], f"{where}.field"):
            continue
        if sub.get("url") not in (None, f"../{table}"):
            f.warn(f"{where}.url is ignored: a subtable links to its own table's pages")
        f.extra_keys(sub, {"subtable", "field", "title", "titles", "url"}, where)
        out.append({"field": column, "table": table, "title": sub.get("title", ""),
                    "titles": sub.get("titles", {})})
    return out


def _user_value(value: Any) -> str | None:
    """"{{userorgid}}" / "${userid}$" → the logined key it means, else None."""
    text = str(value).strip()
    for left, right in (("{{", "}}"), ("${", "}$")):
        if text.startswith(left) and text.endswith(right):
            return USER_VALUES.get(text[len(left):-len(right)].strip())
    return None


def data_filter(raw: Any, spec: TableSpec, f: Findings) -> dict[str, str]:
    """data_filter {field: "{{userorgid}}"}: the row's owner fields, as logined_userid/userorgid."""
    logined: dict[str, str] = {}
    if raw is None:
        return logined
    if not isinstance(raw, dict):
        f.error("data_filter must be an object of field → value")
        return logined
    for name in f.fields(spec, list(raw), "data_filter"):
        key = _user_value(raw[name])
        if key:
            logined[key] = name
        else:
            f.warn(f"data_filter.{name} = {raw[name]!r} is ignored: only {{{{userid}}}} and {{{{userorgid}}}} "
                   f"(the logged-in user's own rows) filter here", name)
    return logined


def ordering(raw: Any, spec: TableSpec, f: Findings) -> dict[str, str] | None:
    """ordering {field, group}: the integer column users reorder rows by (rows sharing a value move
    together, as parallel steps do), within the rows sharing `group` (the parent). Gives the
    table move up/down routes that renumber in one transaction."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"field": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("field"), str):
        f.error("ordering must be a field name or {field, group}")
        return None
    f.extra_keys(raw, {"field", "group"}, "ordering")
    names = f.fields(spec, [raw["field"]] + ([raw["group"]] if raw.get("group") else []), "ordering")
    if raw["field"] not in names or (raw.get("group") and raw["group"] not in names):
        return None
    if not spec.field(raw["field"]).is_int:
        f.error(f"ordering field {raw['field']!r} must be an integer column", raw["field"])
        return None
    return {"field": raw["field"], "group": raw.get("group") or ""}
