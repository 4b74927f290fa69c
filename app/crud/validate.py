"""Server-side validation from the spec: the same rules for forms, the JSON API and imports."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.i18n import Msg
from app.core.catalog import TableView
from generators.raw_fields import INSERT_TIME
from generators.spec import FLOAT_TYPES, Field

INT_RANGES = {
    "short": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "llong": (-(2**63), 2**63 - 1),
    "longlong": (-(2**63), 2**63 - 1),
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL_RE = re.compile(r"^https?://[^\s]+$")


class Invalid(ValueError):
    """One field's problem, as a message a person can act on."""


def _number_bounds(f: Field, value: Decimal | int | float) -> None:
    if f.min is not None and Decimal(str(value)) < f.min:
        raise Invalid(Msg('must be ≥ {min}', min=f.min))
    if f.max is not None and Decimal(str(value)) > f.max:
        raise Invalid(Msg('must be ≤ {max}', max=f.max))


def _parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        from datetime import UTC

        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _empty(f: Field) -> str | None:
    """What an empty value stores: "" where that is the field's default, else NULL if allowed."""
    if f.default == "" and f.is_text:
        return ""
    if f.nullable:
        return None
    raise Invalid(Msg('required'))


def coerce(f: Field, raw: Any) -> Any:
    """Turn one submitted value (form text or JSON) into the column's Python type, or raise Invalid.

    Numbers keep what their spec type holds: `decimal` (and a `float` with a scale, read as one)
    exactly, within its precision and scale; the floating types as 8-byte floats."""
    if isinstance(raw, str) and f.type not in ("str", "char", "text"):
        raw = raw.strip()
    if raw is None or raw == "":
        return _empty(f)
    t = f.type
    if t in INT_RANGES:
        if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
            raise Invalid(Msg('must be a whole number'))
        try:
            value = int(raw) if not isinstance(raw, str) else int(raw, 10)
        except (TypeError, ValueError):
            raise Invalid(Msg('must be a whole number')) from None
        low, high = INT_RANGES[t]
        if not low <= value <= high:
            raise Invalid(Msg('out of range'))
        _number_bounds(f, value)
    elif t == "decimal":
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float, Decimal)):
            raise Invalid(Msg('must be a number'))
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise Invalid(Msg('must be a number')) from None
        if not value.is_finite():
            raise Invalid(Msg('must be a number'))
        _sign, digits, exp = value.normalize().as_tuple()
        scale = max(0, -exp)
        if scale > (f.dec or 0):
            raise Invalid(Msg('at most {dec} decimal places', dec=f.dec))
        if value != 0 and len(digits) + exp > (f.length or 18) - (f.dec or 0):
            raise Invalid(Msg('too large'))
        _number_bounds(f, value)
    elif t in FLOAT_TYPES:
        if isinstance(raw, bool):
            raise Invalid(Msg('must be a number'))
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise Invalid(Msg('must be a number')) from None
        _number_bounds(f, value)
    elif f.is_text:
        if not isinstance(raw, (str, int, Decimal)) or isinstance(raw, bool):
            raise Invalid(Msg('must be text'))
        value = str(raw)
        if f.is_string:
            value = value.strip()
            if value == "" and f.nullable:
                return _empty(f)
        if f.length and len(value) > f.length:
            raise Invalid(Msg('at most {length} characters', length=f.length))
        if "\x00" in value:
            raise Invalid(Msg('must not contain NUL characters'))
        if f.pattern and not re.fullmatch(f.pattern, value):
            raise Invalid(Msg('has the wrong format'))
        if f.format == "json" or f.widget == "json":
            try:
                json.loads(value)
            except ValueError as exc:
                raise Invalid(Msg('is not valid JSON: {msg} (line {lineno})', msg=exc.msg, lineno=exc.lineno)) from None
            except RecursionError:
                raise Invalid(Msg('is JSON nested too deeply')) from None
        elif f.format == "email" and not EMAIL_RE.match(value):
            raise Invalid(Msg('is not an email address'))
        elif f.format == "url" and not URL_RE.match(value):
            raise Invalid(Msg('is not an http(s) URL'))
    elif f.is_datetime:
        try:
            value = raw if isinstance(raw, datetime) else _parse_datetime(str(raw))
        except ValueError:
            raise Invalid(Msg('must be a date and time (YYYY-MM-DD HH:MM)')) from None
    elif t == "date":
        try:
            value = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
        except ValueError:
            raise Invalid(Msg('must be a date (YYYY-MM-DD)')) from None
    elif t == "time":
        try:
            value = raw if isinstance(raw, time) else time.fromisoformat(str(raw))
        except ValueError:
            raise Invalid(Msg('must be a time (HH:MM)')) from None
    else:
        raise Invalid(Msg('cannot be written here'))
    if f.choices and str(value) not in {c.value for c in f.choices}:
        raise Invalid(Msg('is not one of the allowed values'))
    return value


def validate_input(
    tv: TableView, data: dict[str, Any], *, creating: bool, strict: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check submitted values against the spec; returns (clean values, errors by field).

    Only the view's form fields may be written (no mass assignment). With `strict` (the JSON
    API) any other key is an error; a form simply never reads other keys.
    """
    writable = tv.view["form_fields"]
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if strict:
        for key in data:
            if key not in writable:
                errors[key] = Msg('unknown field') if key not in tv.fields else Msg('cannot be written')
    for name in writable:
        f = tv.fields[name]
        if name not in data or creating and f.default == INSERT_TIME and data[name] in (None, ""):
            if creating and not f.nullable and f.default is None:
                errors[name] = Msg('required')
            continue  # left out, so the database fills in its default (the insert time)
        try:
            values[name] = coerce(f, data[name])
        except Invalid as exc:
            errors[name] = exc.args[0]  # the Msg, rendered in the reader's language
    return values, errors
