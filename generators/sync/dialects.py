"""What altering a live schema does differently per database: one small class per dialect.

In the spirit of SQLAlchemy's dialect compilers, the planner asks the dialect and never tests
its name. `SyncDialect` is the SQL standard's way (PostgreSQL's); MySQL/MariaDB and SQLite
override what they do otherwise.
"""
from __future__ import annotations

import re
import sqlite3

from collections.abc import Callable

from sqlalchemy import Column, Table, UniqueConstraint, func
from sqlalchemy.sql.elements import ColumnElement

from generators.column_types import InsertTime


class SyncDialect:
    """ALTER TABLE as the standard has it: typed ALTER COLUMN, constraints added and dropped freely."""

    drops_dependents_first = False
    """Whether the FKs and CHECKs naming a column must be dropped before it (PostgreSQL drops them with it)."""
    constraint_blocker: str | None = None
    """Why this dialect cannot add a constraint to an existing table, if it cannot."""
    alter_blocker: str | None = None
    """Why this dialect cannot change a column's type or NULL-ability in place, if it cannot."""

    def __init__(self, name: str):
        self.name = name

    def fold_type(self, normalised: str) -> str:
        """This dialect's float names made to mean their size: FLOAT is 4 bytes, DOUBLE 8."""
        return normalised

    def char_length(self, column: ColumnElement) -> ColumnElement:
        """The length of a text value in characters."""
        return func.length(column)

    def add_column_blocker(self, column: Column, has_rows: Callable[[], bool]) -> str | None:
        """Why `column` cannot be added to a live table, if it cannot (`has_rows` asks the table)."""
        return None

    def drop_column_blocker(self, live: Table, column: Column, dependents: list) -> str | None:
        """Why `column` cannot be dropped from `live` (`dependents`: FKs and CHECKs naming it)."""
        return None

    def alter_statements(self, table: str, column: str, definition: str, type_: str, kind: str | None,
                         tighten: bool, relax: bool) -> list[str]:
        """The ALTERs for a type change (`kind`, see `classify`) and/or NOT NULL set (`tighten`) or
        dropped (`relax`); names and `type_` are compiled, `definition` is the whole column's."""
        head = f"ALTER TABLE {table} ALTER COLUMN {column}"
        statements = []
        if kind:
            using = f" USING {column}::{type_}" if kind == "retype" else ""
            statements.append(f"{head} TYPE {type_}{using}")
        if tighten or relax:
            statements.append(f"{head} {'SET' if tighten else 'DROP'} NOT NULL")
        return statements


class PostgreSQLSync(SyncDialect):
    def fold_type(self, normalised: str) -> str:
        """PostgreSQL's bare FLOAT (and FLOAT(25..53)) is 8 bytes, its REAL and FLOAT(1..24) are 4."""
        m = re.fullmatch(r"FLOAT(?:\((\d+)\))?", normalised)
        if m:
            normalised = "FLOAT" if m.group(1) and int(m.group(1)) <= 24 else "DOUBLE"
        return "FLOAT" if normalised == "REAL" else normalised


class MySQLSync(SyncDialect):
    """MySQL and MariaDB: MODIFY COLUMN restates the column; a column's FKs and CHECKs go first."""

    drops_dependents_first = True

    def fold_type(self, normalised: str) -> str:
        return "DOUBLE" if normalised == "REAL" else normalised  # MySQL's REAL is 8 bytes

    def char_length(self, column: ColumnElement) -> ColumnElement:
        return func.char_length(column)  # LENGTH counts bytes there

    def alter_statements(self, table: str, column: str, definition: str, type_: str, kind: str | None,
                         tighten: bool, relax: bool) -> list[str]:
        return [f"ALTER TABLE {table} MODIFY COLUMN {definition}"]


class SQLiteSync(SyncDialect):
    """SQLite's ALTER TABLE adds and drops plain columns; anything else needs a table rebuild."""

    constraint_blocker = "SQLite cannot add constraints to an existing table; the app still validates"
    alter_blocker = "SQLite changes a column's type or NULL-ability only by a table rebuild"

    def add_column_blocker(self, column: Column, has_rows: Callable[[], bool]) -> str | None:
        arg = getattr(column.server_default, "arg", None)
        default = str(getattr(arg, "text", ""))
        if (isinstance(arg, InsertTime) or default.upper().startswith("CURRENT_")) and has_rows():
            return "SQLite cannot add a column with a non-constant default to a table with rows"
        return None

    def drop_column_blocker(self, live: Table, column: Column, dependents: list) -> str | None:
        unique = any(column.name in u.columns for u in live.constraints if isinstance(u, UniqueConstraint))
        if sqlite3.sqlite_version_info < (3, 35) or column.primary_key or dependents or unique:
            return "it is part of a key or constraint, or SQLite < 3.35"
        return None


_DIALECTS: dict[str, SyncDialect] = {
    "postgresql": PostgreSQLSync("postgresql"),
    "mysql": MySQLSync("mysql"),
    "mariadb": MySQLSync("mysql"),  # one dialect to the plan: MariaDB alters as MySQL does
    "sqlite": SQLiteSync("sqlite"),
}


def sync_dialect(name: str) -> SyncDialect:
    """The sync rules of SQLAlchemy dialect `name`; the standard's for a dialect not listed."""
    return _DIALECTS.get(name) or SyncDialect(name)
