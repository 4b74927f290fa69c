"""Compile specs into DDL text for one dialect, in dependency order (referenced tables first)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable, SetColumnComment, SetTableComment

from generators.lookup_grams import extra_statements
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

Compile = Callable[[Any], str]
"""A DDL element → its statement text, for one dialect (see `compiler`)."""


def compiler(dialect: Dialect) -> Compile:
    return lambda element: str(element.compile(dialect=dialect)).strip()


def comment_statements(dialect: Dialect, to_sql: Compile, columns: Iterable[Column],
                       table: Table | None = None) -> list[str]:
    """Separate COMMENT statements (PostgreSQL's way) for `table` and `columns`, where the dialect
    does not write comments inline."""
    if dialect.inline_comments or not dialect.supports_comments:
        return []
    out = [to_sql(SetTableComment(table))] if table is not None and table.comment else []
    return out + [to_sql(SetColumnComment(c)) for c in columns if c.comment]


def table_statements(table: Table, dialect: Dialect, to_sql: Compile) -> list[str]:
    """What creates one table: CREATE TABLE, its indexes by name, its comments, and for a contains
    side table its triggers and fill (`generators.lookup_grams`)."""
    statements = [to_sql(CreateTable(table))]
    statements += [to_sql(CreateIndex(index)) for index in sorted(table.indexes, key=lambda i: i.name)]
    return statements + comment_statements(dialect, to_sql, table.columns, table) + extra_statements(table, dialect)


def ddl_statements(specs: Iterable[TableSpec], dialect_name: str) -> list[str]:
    """One string per statement, no trailing semicolons."""
    dialect = DIALECTS[dialect_name]
    to_sql = compiler(dialect)
    statements: list[str] = []
    for table in build_metadata(specs).sorted_tables:
        if not table.info.get("stub"):
            statements += table_statements(table, dialect, to_sql)
    return statements


def ddl_text(specs: Iterable[TableSpec], dialect_name: str) -> str:
    return "".join(s + ";\n\n" for s in ddl_statements(specs, dialect_name))
