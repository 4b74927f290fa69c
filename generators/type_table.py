"""The type table of `docs/types.md`, made from the compiler itself (`json2ddl --types`).

Each row compiles a one-field spec per dialect, so the documented column types are the ones
the DDL holds; a test keeps the document and this output the same.
"""
from __future__ import annotations

from sqlalchemy import MetaData

from generators.column_types import SQLiteDecimal
from generators.ddl import DIALECTS
from generators.raw_spec import parse_spec
from generators.schema import add_table
from generators.spec_types import ALIASES

EXAMPLES: tuple[tuple[str, dict], ...] = (
    ("`str(32)`", {"type": "str", "length": 32}),
    ("`char(32)`", {"type": "char", "length": 32}),
    ("`short`", {"type": "short"}),
    ("`int`", {"type": "int"}),
    ("`long`, `llong`, `longlong`", {"type": "long"}),
    ("`float`, `double`, `ddouble`", {"type": "float"}),
    ("`float(18,2)`, `double(18,2)` (a scale)", {"type": "float", "length": 18, "dec": 2}),
    ("`decimal(18,6)`", {"type": "decimal", "length": 18, "dec": 6}),
    ("`decimal(30,10)`", {"type": "decimal", "length": 30, "dec": 10}),
    ("`date`", {"type": "date"}),
    ("`time`", {"type": "time"}),
    ("`datetime`", {"type": "datetime"}),
    ("`timestamp`", {"type": "timestamp"}),
    ("`text`", {"type": "text"}),
    ("`bin`", {"type": "bin"}),
)
COLUMNS = (("MySQL / MariaDB", "mysql"), ("SQLite", "sqlite"), ("PostgreSQL", "postgresql"))


def _column_sql(field: dict, dialect: str) -> str:
    spec = parse_spec({"summary": [{"name": "t", "primary": ["id"]}],
                       "fields": [{"name": "id", "type": "int"}, {"name": "c", **field}]}, "types")
    column = add_table(spec, MetaData()).c.c
    compiled = DIALECTS[dialect]
    text = str(column.type.compile(dialect=compiled))
    impl = column.type.dialect_impl(compiled)
    if isinstance(impl, SQLiteDecimal):
        text += f", value × 10^{impl.scale} as INTEGER" if impl.scaled else ", exact text"
    if spec.field("c").default is not None:
        text += " DEFAULT " + str(column.server_default.arg.compile(dialect=compiled))
    return text


def type_table() -> str:
    """The spec types and the SQL names read as them, as Markdown."""
    lines = ["| spec type | " + " | ".join(title for title, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for label, field in EXAMPLES:
        lines.append(f"| {label} | " + " | ".join(_column_sql(field, d) for _, d in COLUMNS) + " |")
    lines += ["", "| SQL name (any case, `(n)` or `(p,s)` may follow) | read as |", "|---|---|"]
    by_type: dict[str, list[str]] = {}
    for name, spec_type in ALIASES.items():
        by_type.setdefault(spec_type, []).append(f"`{name}`")
    for spec_type, names in by_type.items():
        lines.append(f"| {', '.join(names)} | `{spec_type}` |")
    return "\n".join(lines) + "\n"
