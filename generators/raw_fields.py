"""One field of a raw spec, and the small value checks the whole spec shares.

Every check records its problem and goes on with a harmless value, so a file with seven problems
reports seven (`generators.raw_spec` collects them). `Err` is the recorder: `err(message, fix)`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from generators.spec import FLOAT_TYPES, INT_TYPES, NAME_RE, TEXT_TYPES, TIME_TYPES, Choice, Field
from generators.spec_types import resolve_type, suggestion

Err = Callable[..., None]

FIELD_KEYS = {
    "name", "title", "titles", "type", "length", "dec", "nullable", "default", "comments",
    "choices", "min", "max", "pattern", "format", "readonly", "widget",
}
CHOICE_KEYS = {"value", "title", "titles"}
FORMATS = {"json", "email", "url", "money", "unit_price"}
NUMBER_FORMATS = {"money", "unit_price"}  # how a decimal reads for people (app.web.formatting)
WIDGETS = {"textarea", "password", "json"}
INSERT_TIME = "CURRENT_TIMESTAMP"
"""The default that makes the database write the insert time (UTC), see `generators.column_types`."""


def yes_no(value: Any, err: Err, key: str = "nullable") -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "y", "1"):
        return True
    if text in ("no", "false", "n", "0"):
        return False
    err(f"{key} must be yes/no/true/false, not {value!r}")
    return True


def int_or_none(value: Any, key: str, err: Err) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        err(f"{key} must be an integer, not {value!r}")
        return None
    if number < 0:
        err(f"{key} must not be negative")
        return None
    return number


def decimal_or_none(value: Any, key: str, err: Err) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        err(f"{key} must be a number, not {value!r}")
        return None
    return number


def as_list(value: Any, what: str, err: Err) -> list:
    """A list-valued key; any other value is a problem, read as the empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        err(f"{what} must be a list")
        return []
    return value


def names(value: Any, what: str, err: Err) -> list[str]:
    items = as_list(value, what, err)
    if not all(isinstance(x, str) for x in items):
        err(f"{what} must be a list of field names")
    return [x for x in items if isinstance(x, str)]


def titles(value: Any, err: Err) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        err("titles must be an object of language → text")
        return ()
    return tuple(sorted(value.items()))


def check_keys(obj: Any, allowed: set[str], what: str, err: Err) -> dict | None:
    """`obj` if it is an object (its unknown keys each a problem), else None."""
    if not isinstance(obj, dict):
        err(f"{what} must be an object")
        return None
    for key in sorted(set(obj) - allowed):
        err(f"unknown key {key!r} in {what}", suggestion(key, sorted(allowed)))
    return obj


def typed_default(ftype: str, value: Any, err: Err) -> Any:
    """A spec default as its column's type, so DDL can emit it unquoted where it should.

    `""` stays a default on text fields (a NOT NULL text column filled with the empty string)."""
    if value is None or value == "":
        return "" if value == "" and ftype in TEXT_TYPES else None
    text = str(value).strip()
    if ftype in TIME_TYPES and text.upper() in ("CURRENT_TIMESTAMP", "NOW()", "NOW"):
        return INSERT_TIME
    if ftype in INT_TYPES:
        number = decimal_or_none(text, "default", err)
        if number is None:
            return None
        if number != number.to_integral_value() or not -2**63 <= number < 2**63:
            err(f"default {value!r} is not a 64-bit integer")
            return None
        return int(number)
    if ftype in FLOAT_TYPES or ftype == "decimal":
        return decimal_or_none(text, "default", err)
    if ftype == "bin":
        err("a bin column cannot have a default")
        return None
    return str(value)


def _sizes(ftype: str, written: str | None, length: int | None, dec: int | None,
           err: Err) -> tuple[int | None, int | None]:
    """The length and scale a type keeps, checked: str/char need a length, decimal a precision."""
    if ftype in ("str", "char"):
        if not length:
            err(f"type {ftype} needs a length", 'add "length", e.g. 64')
        return length, None
    if ftype == "decimal":
        if not length:
            what = f"{written} with a scale (dec)" if written else "decimal"
            err(f"{what} needs a precision (length): the number of digits in all",
                'add "length", e.g. 18 for money')
            return None, None
        dec = dec or 0
        if dec > length:
            err("decimal scale (dec) exceeds its precision (length)")
        return length, dec
    return (length if ftype in ("text", "bin") else None), None


def _choices(raw: dict, err: Err) -> list[Choice]:
    out = []
    for c in as_list(raw.get("choices"), "choices", err):
        if check_keys(c, CHOICE_KEYS, "choice", err) is None:
            continue
        if "value" not in c:
            err("a choice needs a value")
            continue
        out.append(Choice(str(c["value"]), str(c.get("title") or c["value"]), titles(c.get("titles"), err)))
    return out


def _text_options(raw: dict, err: Err) -> tuple[str | None, str | None, str | None]:
    """format, widget and pattern, each checked."""
    values = {}
    for key in ("format", "widget", "pattern"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            err(f"{key} must be text")
            value = None
        values[key] = value or None
    for key, allowed in (("format", FORMATS), ("widget", WIDGETS)):
        if values[key] is not None and values[key] not in allowed:
            err(f"unknown {key} {values[key]!r}", f"one of {', '.join(sorted(allowed))}")
            values[key] = None
    if values["pattern"] is not None:
        try:
            re.compile(values["pattern"])
        except re.error as exc:
            err(f"pattern does not compile: {exc}")
            values["pattern"] = None
    return values["format"], values["widget"], values["pattern"]


def parse_field(raw: Any, table_err: Callable[..., None]) -> tuple[str | None, Field | None]:
    """(its name if valid, the field if it has no problem); `table_err(message, field, fix)`."""
    name = raw.get("name") if isinstance(raw, dict) else None
    label = name if isinstance(name, str) else None
    count = 0

    def err(message: str, fix: str | None = None) -> None:
        nonlocal count
        count += 1
        table_err(message, label, fix)

    if check_keys(raw, FIELD_KEYS, "field", err) is None:
        return None, None
    if not isinstance(name, str) or not NAME_RE.match(name):
        err(f"field name {name!r} is not a valid identifier")
        name = None
    resolved = resolve_type(raw.get("type"), int_or_none(raw.get("length"), "length", err),
                            int_or_none(raw.get("dec"), "dec", err), err)
    ftype = resolved.type if resolved else "str"
    length, dec = _sizes(ftype, resolved and resolved.written, resolved and resolved.length,
                         resolved and resolved.dec, err) if resolved else (None, None)
    choices = _choices(raw, err)
    fmt, widget, pattern = _text_options(raw, err)
    if fmt in NUMBER_FORMATS and ftype != "decimal":
        err(f"format {fmt!r} is for a decimal (a type with a scale), not {ftype!r}")
    default = typed_default(ftype, raw.get("default"), err)
    if choices and default is not None and str(default) not in {c.value for c in choices}:
        err(f"default {default!r} is not one of the choices")
    if ftype == "timestamp" and default is None:
        default = INSERT_TIME  # what the ecosystem's DDL does: the insert time unless given
    field = Field(
        name=name or "",
        title=str(raw.get("title") or name).strip(),
        type=ftype,
        length=length,
        dec=dec,
        nullable=yes_no(raw.get("nullable"), err),
        default=default,
        comments=(str(raw["comments"]).strip() or None) if raw.get("comments") else None,
        titles=titles(raw.get("titles"), err),
        choices=tuple(choices),
        min=decimal_or_none(raw.get("min"), "min", err),
        max=decimal_or_none(raw.get("max"), "max", err),
        pattern=pattern,
        format=fmt or (resolved.format if resolved else None),
        readonly=yes_no(raw.get("readonly"), err, "readonly") if raw.get("readonly") not in (None, "") else False,
        widget=widget,
        written_type=resolved.written if resolved else None,
    )
    return name, (field if count == 0 else None)
