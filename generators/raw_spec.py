"""A spec's raw form, the plain dict a JSON file holds, both ways.

`parse_spec` validates a raw dict (from JSON or Excel) into a `TableSpec`, or raises every
problem it has at once (`SpecErrors`); `spec_to_raw` is its inverse, the canonical form the
manifest and conversions write. Field-level checks live in `generators.raw_fields`.
"""
from __future__ import annotations

from typing import Any

from generators.raw_fields import as_list, check_keys, names, parse_field, titles
from generators.spec import NAME_RE, Code, Field, Index, SpecError, TableSpec, raise_all
from generators.spec_types import suggestion

TOP_KEYS = {"summary", "fields", "indexes", "codes", "data"}
SUMMARY_KEYS = {"name", "title", "titles", "primary", "catelog"}
INDEX_KEYS = {"name", "idxtype", "idxfields"}
IDXTYPES = ("unique", "index", "contains")
"""`contains`: our extension, a trigram side table for the picker's contains search (docs/picker.md)."""
CODE_KEYS = {"field", "table", "valuefield", "textfield", "cond", "on_delete", "search", "owner", "snapshot"}
ON_DELETE = {"cascade", "restrict"}
VIEW_MARKS = {"tblname", "params"}
"""Keys of a CRUD view file: one of these and no summary/fields is a view, not a table spec."""


def is_view_file(raw: Any) -> bool:
    """A CRUD view definition (tblname, params), which a folder of specs may hold by mistake."""
    return isinstance(raw, dict) and bool(VIEW_MARKS & set(raw)) and not ({"summary", "fields"} & set(raw))


def _summary(raw: dict, err) -> dict:
    summary = raw.get("summary")
    if isinstance(summary, list):
        if len(summary) != 1:
            err("summary must hold exactly one object")
        summary = summary[0] if summary else None
    return check_keys(summary, SUMMARY_KEYS, "summary", err) or {}


def _fields(raw: dict, terr) -> tuple[list[Field], set[str] | None]:
    """The good fields, and the names of all fields with a valid name (so one broken field does
    not make every index and code on it a second problem); None when there is no field list."""
    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        terr("fields must be a non-empty list")
        return [], None
    fields: list[Field] = []
    seen: set[str] = set()
    for rf in raw_fields:
        name, f = parse_field(rf, terr)
        if name in seen:
            terr("duplicate field", name)
            continue
        if name:
            seen.add(name)
        if f is not None:
            fields.append(f)
    return fields, seen


def _primary(summary: dict, seen: set[str] | None, terr) -> list[str]:
    given = summary.get("primary")
    if isinstance(given, str):
        given = [p.strip() for p in given.split(",") if p.strip()]
    primary = names(given, "primary", terr)
    if not given:
        terr("no primary key", None, 'name it in the summary, e.g. "primary": ["id"]')
    for p in primary:
        if seen is not None and p not in seen:
            terr("primary key names an unknown field", p, suggestion(p, sorted(seen or ())))
    return primary


def _indexes(raw: dict, seen: set[str] | None, terr) -> list[Index]:
    indexes: list[Index] = []
    index_names: set[str] = set()
    for ri in as_list(raw.get("indexes"), "indexes", terr):
        if check_keys(ri, INDEX_KEYS, "index", terr) is None:
            continue
        iname = ri.get("name")
        if not isinstance(iname, str) or not NAME_RE.match(iname):
            terr(f"index name {iname!r} is not a valid identifier")
            continue
        if iname in index_names:
            terr(f"duplicate index {iname!r}")
            continue
        index_names.add(iname)
        kind = ri.get("idxtype")
        if kind not in IDXTYPES:
            terr(f"index {iname}: idxtype must be unique, index or contains, not {kind!r}")
        ifields = ri.get("idxfields")
        if isinstance(ifields, str):
            ifields = [x.strip() for x in ifields.split(",") if x.strip()]
        ifields = names(ifields, f"index {iname}: idxfields", terr)
        if not ifields:
            terr(f"index {iname} has no fields")
        unknown = [n for n in ifields if seen is not None and n not in seen]
        for name in unknown:
            terr(f"index {iname} names an unknown field", name, suggestion(name, sorted(seen or ())))
        if kind in IDXTYPES and ifields and not unknown:
            indexes.append(Index(iname, kind == "unique", tuple(ifields), contains=kind == "contains"))
    return indexes


def _codes(raw: dict, seen: set[str] | None, terr) -> list[Code]:
    codes: list[Code] = []
    for rc in as_list(raw.get("codes"), "codes", terr):
        if check_keys(rc, CODE_KEYS, "code", terr) is None:
            continue
        cfield = rc.get("field")
        if not isinstance(cfield, str) or (seen is not None and cfield not in seen):
            terr("code on an unknown field", str(cfield), suggestion(str(cfield), sorted(seen or ())))
            continue
        missing = [key for key in ("table", "valuefield", "textfield") if not rc.get(key)]
        for key in missing:
            terr(f"code needs {key}", cfield)
        on_delete = rc.get("on_delete") or None
        if on_delete is not None and (not isinstance(on_delete, str) or on_delete not in ON_DELETE):
            terr(f"on_delete must be cascade or restrict, not {on_delete!r}", cfield)
            continue
        search = rc.get("search") or []
        if isinstance(search, str):
            search = [x.strip() for x in search.split(",") if x.strip()]
        search = names(search, f"code {cfield}: search", terr)
        owner = rc.get("owner") or None
        if owner is not None and not (isinstance(owner, str) and NAME_RE.match(owner)):
            terr(f"code owner must be a field name, not {owner!r}", cfield)
            continue
        snapshot = rc.get("snapshot") or None
        if snapshot is not None and (not isinstance(snapshot, str) or (seen is not None and snapshot not in seen)):
            terr("snapshot must name a field of this table", f"{cfield}: {snapshot!r}")
            continue
        if missing:
            continue
        code = Code(cfield, str(rc["table"]), str(rc["valuefield"]), str(rc["textfield"]),
                    rc.get("cond") or None, on_delete, tuple(search), owner, snapshot)
        if on_delete and not code.is_plain_table:
            terr("on_delete needs a plain table name, not a sub-select", cfield)
            continue
        codes.append(code)
    return codes


def _data(raw: dict, seen: set[str] | None, terr) -> list[tuple[tuple[str, Any], ...]]:
    data = []
    for row in as_list(raw.get("data"), "data", terr):
        if not isinstance(row, dict):
            terr("data rows must be objects")
            continue
        for key in row:
            if seen is not None and key not in seen:
                terr("data row names an unknown field", key, suggestion(key, sorted(seen or ())))
        data.append(tuple(sorted(row.items())))
    return data


def parse_spec(raw: Any, source: str) -> TableSpec:
    """Validate a spec dict (from JSON or Excel) into a TableSpec, or raise all its problems."""
    problems: list[SpecError] = []
    table: str | None = None

    def err(message: str, fix: str | None = None) -> None:
        problems.append(SpecError(source, table, None, message, fix))

    def terr(message: str, fieldname: str | None = None, fix: str | None = None) -> None:
        problems.append(SpecError(source, table, fieldname, message, fix))

    if is_view_file(raw):
        name = raw.get("tblname")
        table = name if isinstance(name, str) else None
        err("this is a CRUD view file (it has tblname/params), not a table spec",
            f"move it to modules/<module>/views/{table or '<table>'}.json; `pipeline-app spec check` reads both")
        raise_all(problems)
    if not isinstance(raw, dict):
        err("a spec must be an object")
        raise_all(problems)
    if not {"summary", "fields"} & set(raw):
        err("neither a table spec (summary, fields) nor a CRUD view file (tblname, params)")
        raise_all(problems)
    summary = _summary(raw, err)
    name = summary.get("name")
    table = name if isinstance(name, str) else None
    for key in sorted(set(raw) - TOP_KEYS):
        err(f"unknown key {key!r}", suggestion(key, sorted(TOP_KEYS)))
    if not isinstance(name, str) or not NAME_RE.match(name):
        err(f"table name {name!r} is not a valid identifier")
    fields, seen = _fields(raw, terr)
    primary = _primary(summary, seen, terr)
    indexes, codes, data = _indexes(raw, seen, terr), _codes(raw, seen, terr), _data(raw, seen, terr)
    spec_titles = titles(summary.get("titles"), err)
    raise_all(problems)
    return TableSpec(
        name=str(name),
        title=str(summary.get("title") or name).strip(),
        primary=tuple(primary),
        fields=tuple(Field(**{**f.__dict__, "nullable": False}) if f.name in primary else f for f in fields),
        indexes=tuple(indexes),
        codes=tuple(codes),
        titles=spec_titles,
        catelog=summary.get("catelog") or None,
        data=tuple(data),
        source=source,
    )


def spec_to_raw(spec: TableSpec, as_written: bool = False) -> dict:
    """The canonical JSON form of a spec: what `parse_spec` reads back to an equal TableSpec.

    Used for the compiled manifest and, `as_written` (types as the file spelled them: `bigint`,
    `float` with a scale), for conversions; keys with empty values are left out so converted
    files stay as short as hand-written ones.
    """
    summary: dict[str, Any] = {"name": spec.name, "title": spec.title, "primary": list(spec.primary)}
    if spec.titles:
        summary["titles"] = dict(spec.titles)
    if spec.catelog:
        summary["catelog"] = spec.catelog
    fields = []
    for f in spec.fields:
        d: dict[str, Any] = {"name": f.name, "title": f.title,
                             "type": (f.written_type if as_written else None) or f.type}
        if f.length is not None:
            d["length"] = f.length
        if f.dec is not None:
            d["dec"] = f.dec
        d["nullable"] = "yes" if f.nullable else "no"
        if f.default is not None:
            d["default"] = str(f.default)
        for key in ("comments", "pattern", "format", "widget"):
            if getattr(f, key):
                d[key] = getattr(f, key)
        if f.titles:
            d["titles"] = dict(f.titles)
        if f.choices:
            d["choices"] = [
                {"value": c.value, "title": c.title, **({"titles": dict(c.titles)} if c.titles else {})}
                for c in f.choices
            ]
        for key in ("min", "max"):
            if getattr(f, key) is not None:
                d[key] = str(getattr(f, key))
        if f.readonly:
            d["readonly"] = "yes"
        fields.append(d)
    raw: dict[str, Any] = {"summary": [summary], "fields": fields}
    if spec.indexes:
        raw["indexes"] = [
            {"name": i.name, "idxtype": i.idxtype, "idxfields": list(i.fields)}
            for i in spec.indexes
        ]
    if spec.codes:
        raw["codes"] = [
            {k: list(v) if isinstance(v, tuple) else v for k, v in c.__dict__.items() if v not in (None, ())}
            for c in spec.codes
        ]
    if spec.data:
        raw["data"] = [dict(row) for row in spec.data]
    return raw
