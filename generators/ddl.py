"""Compile specs into DDL text for one dialect, in dependency order (referenced tables first)."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable, SetColumnComment, SetTableComment

from generators.schema import build_metadata
from generators.spec import TableSpec

# paramstyle "named": the default "format"/"pyformat" makes the compiler double every `%` (for a
# driver's later interpolation), which would store `50%%` when the printed DDL is run by a client.
DIALECTS: dict[str, Dialect] = {
    "mysql": mysql.dialect(paramstyle="named"),
    "mariadb": mysql.dialect(is_mariadb=True, paramstyle="named"),
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(paramstyle="named"),
}


def ddl_statements(specs: Iterable[TableSpec], dialect_name: str) -> list[str]:
    """One string per statement, no trailing semicolons."""
    dialect = DIALECTS[dialect_name]
    statements: list[str] = []
    for table in build_metadata(specs).sorted_tables:
        if table.info.get("stub"):
            continue
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
        if not dialect.inline_comments and dialect.supports_comments:
            if table.comment:
                statements.append(str(SetTableComment(table).compile(dialect=dialect)))
            for col in table.columns:
                if col.comment:
                    statements.append(str(SetColumnComment(col).compile(dialect=dialect)))
    return statements


def ddl_text(specs: Iterable[TableSpec], dialect_name: str) -> str:
    return "".join(s + ";\n\n" for s in ddl_statements(specs, dialect_name))
