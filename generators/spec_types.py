"""Type names as files write them: the spec types, and the SQL names the ecosystem's files use too.

The ecosystem passes a type name it does not know straight into its DDL, so its files hold SQL
names (`bigint`, `varchar`, `decimal(18,2)`) beside the spec types. Each SQL name is read here
as the spec type that compiles to the same column; a `float`/`double` with a scale is the exact
`decimal` it stands for (money), without one an 8-byte double. `docs/types.md` lists them all.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from generators.spec import FLOAT_TYPES, TYPES

ALIASES: dict[str, str] = {
    # integers, by the range they hold (tinyint and bool fit a SMALLINT)
    "tinyint": "short", "smallint": "short", "int2": "short", "bool": "short", "boolean": "short",
    "mediumint": "int", "integer": "int", "int4": "int",
    "bigint": "long", "int8": "long",
    # floating point: 8 bytes, or exact decimal when a scale is given
    "real": "double", "float4": "double", "float8": "double", "double precision": "double",
    "numeric": "decimal",
    # text
    "varchar": "str", "nvarchar": "str", "varchar2": "str", "character varying": "str",
    "nchar": "char", "character": "char",
    "tinytext": "text", "mediumtext": "text", "longtext": "text", "clob": "text", "json": "text",
    # binary
    "blob": "bin", "tinyblob": "bin", "mediumblob": "bin", "longblob": "bin", "bytea": "bin",
    "binary": "bin", "varbinary": "bin",
}
"""SQL type name → spec type. Case and extra spaces do not matter; `(n)` / `(p,s)` may follow."""

_TYPE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_ ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

Problem = Callable[..., None]
"""Records one problem of the field being read: `problem(message, fix=None)`."""


@dataclass(frozen=True)
class ResolvedType:
    type: str
    length: int | None
    dec: int | None
    written: str | None
    """The name as written, when it is not the spec type itself."""
    format: str | None = None


def suggestion(word: str, choices: list[str]) -> str | None:
    """"did you mean 'x'?" for a close match among `choices`, if there is one."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f"did you mean {close[0]!r}?" if close else None


def resolve_type(raw: object, length: int | None, dec: int | None, problem: Problem) -> ResolvedType | None:
    """The spec type of a written type name with its length and scale, or None (a problem recorded)."""
    text = str(raw if raw is not None else "").strip()
    m = _TYPE_RE.match(text)
    name = " ".join(m.group(1).lower().split()) if m else text.lower()
    spec_type = name if name in TYPES else ALIASES.get(name)
    if m is None or spec_type is None:
        known = sorted(TYPES) + sorted(ALIASES)
        problem(f"unknown type {raw!r}", suggestion(name, known)
                or "use a spec type (str, int, decimal, ...) or an SQL name listed in docs/types.md")
        return None
    for key, given, inline in (("length", length, m.group(2)), ("dec", dec, m.group(3))):
        if inline is not None and given is not None and int(inline) != given:
            problem(f"type {text!r} and {key} {given} disagree", f"give the {key} once")
            return None
    length = int(m.group(2)) if m.group(2) is not None else length
    dec = int(m.group(3)) if m.group(3) is not None else dec
    if spec_type in FLOAT_TYPES and dec is not None:
        spec_type = "decimal"  # a scale asks for exact digits: the ecosystem's NUMERIC(p,s) / money
    written = text if text != spec_type else None
    return ResolvedType(spec_type, length, dec, written, "json" if name == "json" else None)
