"""What differs between the three databases at run time, one small class per dialect.

In the spirit of SQLAlchemy's dialect compilers: callers ask for an operation (an upsert) and
the dialect's class answers; no caller branches on the dialect name.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, postgresql, sqlite

# set_(new) → the columns to change on a conflict; `new` is the row that was proposed
SetClause = Callable[[Any], Mapping[str, Any]]


class _OnConflict:
    """PostgreSQL and SQLite: INSERT … ON CONFLICT (key) DO UPDATE."""

    nulls_low = True
    """NULL sorts below every value (first ascending, last descending)."""

    insert: Callable[[Table], Any]

    def upsert(self, table: Table, values: Any, keys: Iterable[str], set_: SetClause) -> Any:
        stmt = self.insert(table).values(values)
        return stmt.on_conflict_do_update(index_elements=[table.c[k] for k in keys], set_=dict(set_(stmt.excluded)))

    def insert_missing(self, table: Table, values: Any, keys: Iterable[str]) -> Any:
        return self.insert(table).values(values).on_conflict_do_nothing(index_elements=[table.c[k] for k in keys])


class _Postgres(_OnConflict):
    nulls_low = False  # PostgreSQL sorts NULL above every value
    insert = staticmethod(postgresql.insert)


class _SQLite(_OnConflict):
    insert = staticmethod(sqlite.insert)


class _MySQL:
    """MySQL and MariaDB: INSERT … ON DUPLICATE KEY UPDATE (any unique key)."""

    nulls_low = True

    def upsert(self, table: Table, values: Any, keys: Iterable[str], set_: SetClause) -> Any:
        stmt = mysql.insert(table).values(values)
        return stmt.on_duplicate_key_update(**set_(stmt.inserted))

    def insert_missing(self, table: Table, values: Any, keys: Iterable[str]) -> Any:
        """A no-op update, not INSERT IGNORE: IGNORE would also swallow every other error."""
        key = next(iter(keys))
        return mysql.insert(table).values(values).on_duplicate_key_update({key: table.c[key]})


DIALECTS: dict[str, Any] = {"mysql": _MySQL(), "mariadb": _MySQL(), "postgresql": _Postgres(), "sqlite": _SQLite()}


def upsert(dialect: str, table: Table, values: Any, keys: Iterable[str], set_: SetClause) -> Any:
    """Insert `values` (a row or a list of rows), or on a duplicate `keys` apply `set_(new)`."""
    return DIALECTS[dialect].upsert(table, values, keys, set_)


def insert_missing(dialect: str, table: Table, values: Any, keys: Iterable[str]) -> Any:
    """Insert the rows of `values` whose `keys` are not there yet; leave the others untouched."""
    return DIALECTS[dialect].insert_missing(table, values, keys)


def nulls_low(dialect: str) -> bool:
    """Whether the database sorts NULL below every value (keyset paging places NULL by it)."""
    return DIALECTS[dialect].nulls_low
