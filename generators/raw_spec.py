"""A spec's raw form, the plain dict a JSON file holds, both ways.

`parse_spec` validates a raw dict (from JSON or Excel) into a `TableSpec` or raises one
`SpecError`; `spec_to_raw` is its inverse, the canonical form the manifest and conversions write.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from generators.spec import (
    FLOAT_TYPES,
    INT_TYPES,
    NAME_RE,
    TIME_TYPES,
    TYPES,
    Choice,
    Code,
    Field,
    Index,
    SpecError,
    TableSpec,
)

TOP_KEYS = {"summary", "fields", "indexes", "codes", "data"}
SUMMARY_KEYS = {"name", "title", "titles", "primary", "catelog"}
FIELD_KEYS = {
    "name", "title", "titles", "type", "length", "dec", "nullable", "default", "comments",
    "choices", "min", "max", "pattern", "format", "readonly", "widget",
}
INDEX_KEYS = {"name", "idxtype", "idxfields"}
CODE_KEYS = {"field", "table", "valuefield", "textfield", "cond", "on_delete"}
CHOICE_KEYS = {"value", "title", "titles"}
FORMATS = {"json", "email", "url"}
WIDGETS = {"textarea", "password", "json"}
ON_DELETE = {"cascade", "restrict"}


def _nullable(value: Any, err, key: str = "nullable") -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "y", "1"):
        return True
    if text in ("no", "false", "n", "0"):
        return False
    raise err(f"{key} must be yes/no/true/false, not {value!r}")


def _int_or_none(value: Any, key: str, err) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise err(f"{key} must be an integer, not {value!r}") from None
    if number < 0:
        raise err(f"{key} must not be negative")
    return number


def _decimal_or_none(value: Any, key: str, err) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise err(f"{key} must be a number, not {value!r}")
    return number


def _list(value: Any, what: str, err) -> list:
    """A list-valued key; a wrong type is a SpecError, not a TypeError from iterating it."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise err(f"{what} must be a list")
    return value


def _names(value: Any, what: str, err) -> list:
    names = _list(value, what, err)
    if not all(isinstance(x, str) for x in names):
        raise err(f"{what} must be a list of field names")
    return names


def _titles(value: Any, err) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise err("titles must be an object of language → text")
    return tuple(sorted(value.items()))


def _check_keys(obj: Any, allowed: set[str], what: str, err) -> dict:
    if not isinstance(obj, dict):
        raise err(f"{what} must be an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise err(f"unknown key {unknown[0]!r} in {what}")
    return obj


def typed_default(f: Field | dict, value: Any, err) -> Any:
    """Coerce a spec default to its column's type, so DDL can emit it unquoted where it should."""
    ftype = f["type"] if isinstance(f, dict) else f.type
    if value is None or value == "":
        return None
    text = str(value).strip()
    if ftype in TIME_TYPES and text.upper() in ("CURRENT_TIMESTAMP", "NOW()", "NOW"):
        return "CURRENT_TIMESTAMP"
    if ftype in INT_TYPES:
        number = _decimal_or_none(text, "default", err)
        if number != number.to_integral_value() or not -2**63 <= number < 2**63:
            raise err(f"default {value!r} is not a 64-bit integer")
        return int(number)
    if ftype in FLOAT_TYPES or ftype == "decimal":
        return _decimal_or_none(text, "default", err)
    if ftype == "bin":
        raise err("a bin column cannot have a default")
    return str(value)


def _parse_field(raw: dict, source: str, table: str) -> Field:
    name = raw.get("name") if isinstance(raw, dict) else None

    def err(message: str) -> SpecError:
        return SpecError(source, table, name, message)

    _check_keys(raw, FIELD_KEYS, "field", err)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise err(f"field name {name!r} is not a valid identifier")
    ftype = str(raw.get("type") or "").strip()
    if ftype not in TYPES:
        raise err(f"unknown type {raw.get('type')!r}")
    length = _int_or_none(raw.get("length"), "length", err)
    dec = _int_or_none(raw.get("dec"), "dec", err)
    if ftype in ("str", "char") and not length:
        raise err(f"type {ftype} needs a length")
    if ftype == "decimal":
        if not length:
            raise err("decimal needs a precision (length)")
        if dec is None:
            dec = 0
        if dec > length:
            raise err("decimal scale (dec) exceeds its precision (length)")
    elif ftype not in ("str", "char"):
        length = length if ftype in ("text", "bin") else None
        dec = None
    choices = []
    for c in _list(raw.get("choices"), "choices", err):
        _check_keys(c, CHOICE_KEYS, "choice", err)
        if "value" not in c:
            raise err("a choice needs a value")
        choices.append(Choice(str(c["value"]), str(c.get("title") or c["value"]), _titles(c.get("titles"), err)))
    for key in ("format", "widget", "pattern"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise err(f"{key} must be text")
    fmt = raw.get("format") or None
    if fmt is not None and fmt not in FORMATS:
        raise err(f"unknown format {fmt!r}")
    widget = raw.get("widget") or None
    if widget is not None and widget not in WIDGETS:
        raise err(f"unknown widget {widget!r}")
    pattern = raw.get("pattern") or None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise err(f"pattern does not compile: {exc}") from None
    default = typed_default({"type": ftype}, raw.get("default"), err)
    if choices and default is not None and str(default) not in {c.value for c in choices}:
        raise err(f"default {default!r} is not one of the choices")
    return Field(
        name=name,
        title=str(raw.get("title") or name).strip(),
        type=ftype,
        length=length,
        dec=dec,
        nullable=_nullable(raw.get("nullable"), err),
        default=default,
        comments=(str(raw["comments"]).strip() or None) if raw.get("comments") else None,
        titles=_titles(raw.get("titles"), err),
        choices=tuple(choices),
        min=_decimal_or_none(raw.get("min"), "min", err),
        max=_decimal_or_none(raw.get("max"), "max", err),
        pattern=pattern,
        format=fmt,
        readonly=_nullable(raw.get("readonly"), err, "readonly") if raw.get("readonly") not in (None, "")
        else False,
        widget=widget,
    )


def parse_spec(raw: Any, source: str) -> TableSpec:
    """Validate a spec dict (from JSON or Excel) into a TableSpec, or raise one SpecError."""

    def err(message: str, table: str | None = None, fieldname: str | None = None) -> SpecError:
        return SpecError(source, table, fieldname, message)

    if not isinstance(raw, dict):
        raise err("a spec must be an object")
    summary = raw.get("summary")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        first = summary[0] if isinstance(summary, list) and summary else summary
        name = first.get("name") if isinstance(first, dict) else None
        raise err(f"unknown key {unknown[0]!r}", name if isinstance(name, str) else None)
    if isinstance(summary, list):
        if len(summary) != 1:
            raise err("summary must hold exactly one object")
        summary = summary[0]
    _check_keys(summary, SUMMARY_KEYS, "summary", lambda m: err(m))
    table = summary.get("name")
    if not isinstance(table, str) or not NAME_RE.match(table):
        raise err(f"table name {table!r} is not a valid identifier")

    def terr(message: str, fieldname: str | None = None) -> SpecError:
        return err(message, table, fieldname)

    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise terr("fields must be a non-empty list")
    fields: list[Field] = []
    seen: set[str] = set()
    for rf in raw_fields:
        f = _parse_field(rf, source, table)
        if f.name in seen:
            raise terr("duplicate field", f.name)
        seen.add(f.name)
        fields.append(f)

    primary = summary.get("primary")
    if isinstance(primary, str):
        primary = [p.strip() for p in primary.split(",") if p.strip()]
    if not _names(primary, "primary", terr):
        raise terr("no primary key")
    for p in primary:
        if p not in seen:
            raise terr("primary key names an unknown field", p)
    fields = [
        Field(**{**f.__dict__, "nullable": False}) if f.name in primary else f for f in fields
    ]

    indexes: list[Index] = []
    index_names: set[str] = set()
    for ri in _list(raw.get("indexes"), "indexes", terr):
        _check_keys(ri, INDEX_KEYS, "index", terr)
        iname = ri.get("name")
        if not isinstance(iname, str) or not NAME_RE.match(iname):
            raise terr(f"index name {iname!r} is not a valid identifier")
        if iname in index_names:
            raise terr(f"duplicate index {iname!r}")
        index_names.add(iname)
        kind = ri.get("idxtype")
        if kind not in ("unique", "index"):
            raise terr(f"index {iname}: idxtype must be unique or index, not {kind!r}")
        ifields = ri.get("idxfields")
        if isinstance(ifields, str):
            ifields = [x.strip() for x in ifields.split(",") if x.strip()]
        if not _names(ifields, f"index {iname}: idxfields", terr):
            raise terr(f"index {iname} has no fields")
        for name in ifields:
            if name not in seen:
                raise terr(f"index {iname} names an unknown field", name)
        indexes.append(Index(iname, kind == "unique", tuple(ifields)))

    codes: list[Code] = []
    for rc in _list(raw.get("codes"), "codes", terr):
        _check_keys(rc, CODE_KEYS, "code", terr)
        cfield = rc.get("field")
        if not isinstance(cfield, str) or cfield not in seen:
            raise terr("code on an unknown field", str(cfield))
        for key in ("table", "valuefield", "textfield"):
            if not rc.get(key):
                raise terr(f"code needs {key}", cfield)
        on_delete = rc.get("on_delete") or None
        if on_delete is not None and (not isinstance(on_delete, str) or on_delete not in ON_DELETE):
            raise terr(f"on_delete must be cascade or restrict, not {on_delete!r}", cfield)
        code = Code(cfield, str(rc["table"]), str(rc["valuefield"]), str(rc["textfield"]),
                    rc.get("cond") or None, on_delete)
        if on_delete and not code.is_plain_table:
            raise terr("on_delete needs a plain table name, not a sub-select", cfield)
        codes.append(code)

    data = []
    for row in _list(raw.get("data"), "data", terr):
        if not isinstance(row, dict):
            raise terr("data rows must be objects")
        for key in row:
            if key not in seen:
                raise terr("data row names an unknown field", key)
        data.append(tuple(sorted(row.items())))

    return TableSpec(
        name=table,
        title=str(summary.get("title") or table).strip(),
        primary=tuple(primary),
        fields=tuple(fields),
        indexes=tuple(indexes),
        codes=tuple(codes),
        titles=_titles(summary.get("titles"), lambda m: terr(m)),
        catelog=summary.get("catelog") or None,
        data=tuple(data),
        source=source,
    )


def spec_to_raw(spec: TableSpec) -> dict:
    """The canonical JSON form of a spec: what `parse_spec` reads back to an equal TableSpec.

    Used for the compiled manifest and for Excel → JSON conversion; keys with empty values are
    left out so converted files stay as short as hand-written ones.
    """
    summary: dict[str, Any] = {"name": spec.name, "title": spec.title, "primary": list(spec.primary)}
    if spec.titles:
        summary["titles"] = dict(spec.titles)
    if spec.catelog:
        summary["catelog"] = spec.catelog
    fields = []
    for f in spec.fields:
        d: dict[str, Any] = {"name": f.name, "title": f.title, "type": f.type}
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
            {"name": i.name, "idxtype": "unique" if i.unique else "index", "idxfields": list(i.fields)}
            for i in spec.indexes
        ]
    if spec.codes:
        raw["codes"] = [
            {k: v for k, v in c.__dict__.items() if v is not None} for c in spec.codes
        ]
    if spec.data:
        raw["data"] = [dict(row) for row in spec.data]
    return raw
