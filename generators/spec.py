"""The table spec model: one validated, immutable picture of a table, whatever file it came from.

`generators.raw_spec` builds it from the plain dict (`raw`) a JSON file holds and an Excel
workbook is read into, so a table written either way compiles to identical output;
`generators.loader` reads the files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from decimal import Decimal
from typing import Any

TYPES = frozenset(
    "str char short int long llong longlong float double ddouble decimal "
    "date time datetime timestamp text bin".split()
)
INT_TYPES = frozenset("short int long llong longlong".split())
FLOAT_TYPES = frozenset("float double ddouble".split())
STRING_TYPES = frozenset("str char".split())  # short text: a single-line input, searchable
TEXT_TYPES = STRING_TYPES | {"text"}
NUMBER_TYPES = INT_TYPES | FLOAT_TYPES | {"decimal"}
DATETIME_TYPES = frozenset("datetime timestamp".split())
TIME_TYPES = frozenset("date time datetime timestamp".split())
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SpecError(ValueError):
    """A broken spec: says which file, table and field, in one line."""

    def __init__(self, source: str, table: str | None, fieldname: str | None, message: str):
        self.source, self.table, self.field, self.message = source, table, fieldname, message
        where = table or "?"
        if fieldname:
            where += f".{fieldname}"
        super().__init__(f"{source}: {where}: {message}")


@dataclass(frozen=True)
class Choice:
    value: str
    title: str
    titles: tuple[tuple[str, str], ...] = ()

    def label(self, lang: str) -> str:
        return dict(self.titles).get(lang, self.title)


@dataclass(frozen=True)
class Field:
    name: str
    title: str
    type: str
    length: int | None = None
    dec: int | None = None
    nullable: bool = True
    default: Any = None
    comments: str | None = None
    titles: tuple[tuple[str, str], ...] = ()
    choices: tuple[Choice, ...] = ()
    min: Decimal | None = None
    max: Decimal | None = None
    pattern: str | None = None
    format: str | None = None
    readonly: bool = False
    widget: str | None = None

    def label(self, lang: str) -> str:
        return dict(self.titles).get(lang, self.title)

    @property
    def is_int(self) -> bool:
        return self.type in INT_TYPES

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    @property
    def is_string(self) -> bool:
        return self.type in STRING_TYPES

    @property
    def is_number(self) -> bool:
        return self.type in NUMBER_TYPES

    @property
    def is_datetime(self) -> bool:
        return self.type in DATETIME_TYPES


@dataclass(frozen=True)
class Index:
    name: str
    unique: bool
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    field: str
    table: str
    valuefield: str
    textfield: str
    cond: str | None = None
    on_delete: str | None = None

    @property
    def is_plain_table(self) -> bool:
        """True when `table` names a table (not a sub-select), so it can be queried safely."""
        return bool(NAME_RE.match(self.table))


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    primary: tuple[str, ...]
    fields: tuple[Field, ...]
    indexes: tuple[Index, ...] = ()
    codes: tuple[Code, ...] = ()
    titles: tuple[tuple[str, str], ...] = ()
    catelog: str | None = None
    data: tuple[tuple[tuple[str, Any], ...], ...] = ()
    source: str = dc_field(default="", compare=False)

    def label(self, lang: str) -> str:
        return dict(self.titles).get(lang, self.title)

    def field(self, name: str) -> Field:
        return self.field_map[name]

    @property
    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    def code_for(self, name: str) -> Code | None:
        return next((c for c in self.codes if c.field == name), None)
