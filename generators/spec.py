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
    """A broken spec: says which file, table and field, and the fix when it is obvious, in one line."""

    def __init__(self, source: str, table: str | None, fieldname: str | None, message: str,
                 fix: str | None = None):
        self.source, self.table, self.field, self.message, self.fix = source, table, fieldname, message, fix
        where = table or "?"
        if fieldname:
            where += f".{fieldname}"
        super().__init__(f"{source}: {where}: {message}" + (f" (fix: {fix})" if fix else ""))

    @property
    def problems(self) -> list[SpecError]:
        """Every problem this error stands for, one line each."""
        return [self]


class SpecErrors(SpecError):
    """All the problems found in one file or a set of them, so they are fixed in one pass.

    It is the first problem to code that reads one (`source`, `message`, ...), and every problem,
    one per line, to the person reading it."""

    def __init__(self, problems: list[SpecError]):
        first = problems[0]
        super().__init__(first.source, first.table, first.field, first.message, first.fix)
        self._problems = [q for p in problems for q in p.problems]

    @property
    def problems(self) -> list[SpecError]:
        return list(self._problems)

    def __str__(self) -> str:
        return "\n".join(ValueError.__str__(p) for p in self._problems)


class SpecWarning(SpecError):
    """What a file says that is read but has no effect here: printed, never raised."""


def raise_all(problems: list[SpecError]) -> None:
    """Raise `problems` as one error (nothing when the list is empty)."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SpecErrors(problems)


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
    written_type: str | None = dc_field(default=None, compare=False)
    """The type as the file wrote it when that is not the spec type (`bigint`, `float` with a
    scale), so a conversion writes it back as it was."""

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
    contains: bool = False
    """`idxtype: "contains"`: a picker finds these fields by a fragment from their middle through a
    trigram side table (`generators.lookup_grams`), not a B-tree index."""

    @property
    def idxtype(self) -> str:
        return "contains" if self.contains else "unique" if self.unique else "index"


@dataclass(frozen=True)
class Code:
    field: str
    table: str
    valuefield: str
    textfield: str
    cond: str | None = None
    on_delete: str | None = None
    search: tuple[str, ...] = ()
    """Fields of `table` a picker searches (exact, then prefix, then contains); empty = `textfield`."""
    owner: str | None = None
    """A field of `table` that is itself a lookup (a step's `pipeline_id`): each option names it."""

    @property
    def search_fields(self) -> tuple[str, ...]:
        """What a picker searches besides the value itself: `search`, else the shown text."""
        return self.search or (self.textfield,)

    snapshot: str | None = None
    """A field of this row that keeps the text as it was when the row was written (a usage row's
    pipeline name at the call): shown instead of the looked-up text, so a rename never rewrites it."""

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
