"""Specs → SQLAlchemy `Table`s: the one place a spec type becomes a column type.

SQLAlchemy's dialect compilers then turn these tables into each database's DDL (quoting,
escaping, comments, CHECKs), and the runtime builds every query from the same objects, so no
SQL is ever assembled by text substitution.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    DECIMAL,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from generators.column_types import DecimalDefault, InsertTime, SQLiteDecimal
from generators.lookup_grams import add_gram_tables
from generators.lookup_indexes import add_lookup_indexes
from generators.order_indexes import add_order_indexes
from generators.raw_fields import INSERT_TIME
from generators.spec import Field, TableSpec
from generators.views import views_near

# The type-mapping table: spec type → SQLAlchemy type. Each dialect's compiler maps it on
# (`docs/types.md` holds the table `json2ddl --types` prints). MySQL gets the LONG text/blob
# variants because TEXT/BLOB cap at 64 KiB there, which a version snapshot outgrows. Every
# floating type is 8 bytes (a `float` with a scale was read as `decimal`); decimals are exact
# everywhere, on SQLite through `SQLiteDecimal`.
_LONGTEXT = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_LONGBLOB = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
TYPE_MAP: dict[str, Callable[[Field], TypeEngine]] = {
    "str": lambda f: String(f.length),
    "char": lambda f: CHAR(f.length),
    "short": lambda f: SmallInteger(),
    "int": lambda f: Integer(),
    "long": lambda f: BigInteger(),
    "llong": lambda f: BigInteger(),
    "longlong": lambda f: BigInteger(),
    "float": lambda f: Double(),
    "double": lambda f: Double(),
    "ddouble": lambda f: Double(),
    "decimal": lambda f: DECIMAL(f.length, f.dec, asdecimal=True).with_variant(
        SQLiteDecimal(f.length, f.dec), "sqlite"),
    "date": lambda f: Date(),
    "time": lambda f: Time(),
    "datetime": lambda f: DateTime(),
    "timestamp": lambda f: DateTime(),
    "text": lambda f: _LONGTEXT,
    "bin": lambda f: _LONGBLOB,
}


def server_default(f: Field):
    """A typed DEFAULT: numbers unquoted, text quoted and escaped by the dialect (`""` too), the
    insert time in UTC."""
    if f.default is None:
        return None
    if f.default == INSERT_TIME:
        return InsertTime()
    if f.type == "decimal":
        return DecimalDefault(f.default, f.length, f.dec)
    if isinstance(f.default, (int, Decimal)):
        return text(str(f.default))
    return str(f.default)


def column(f: Field, primary: bool) -> Column:
    return Column(
        f.name,
        TYPE_MAP[f.type](f),
        primary_key=primary,
        nullable=f.nullable and not primary,
        server_default=server_default(f),
        comment=f.comments or f.title or None,
        autoincrement=False,
    )


def index_name(spec: TableSpec, name: str) -> str:
    """Index names are global in PostgreSQL and SQLite, so they carry the table's name."""
    return name if name.startswith(spec.name + "_") else f"{spec.name}_{name}"


def add_table(spec: TableSpec, metadata: MetaData) -> Table:
    """Build the spec's `Table` into `metadata`, with indexes, CHECKs for choices and real FKs."""
    cols = {f.name: column(f, f.name in spec.primary) for f in spec.fields}
    extras: list = [
        CheckConstraint(cols[f.name].in_([c.value for c in f.choices]), name=f"ck_{spec.name}_{f.name}")
        for f in spec.fields if f.choices
    ]
    for code in spec.codes:
        if code.on_delete:
            extras.append(ForeignKeyConstraint(
                [code.field], [f"{code.table}.{code.valuefield}"],
                ondelete=code.on_delete.upper(), name=f"fk_{spec.name}_{code.field}",
            ))
    table = Table(
        spec.name, metadata, *cols.values(), *extras,
        comment=spec.title or None,
        mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci",
    )
    for ix in (ix for ix in spec.indexes if not ix.contains):  # contains: a side table (lookup_grams)
        Index(index_name(spec, ix.name), *[table.c[n] for n in ix.fields], unique=ix.unique)
    return table


def build_metadata(specs: Iterable[TableSpec], views: dict[str, dict[str, Any]] | None = None) -> MetaData:
    """The specs' tables with every index the app relies on: the specs' own, the pickers' and the
    list orders' (of `views`, by default the view files next to the specs, `views_near`)."""
    metadata = MetaData()
    specs = list(specs)
    for spec in specs:
        add_table(spec, metadata)
    _add_fk_stubs(specs, metadata)
    add_lookup_indexes(specs, metadata)
    add_gram_tables(specs, metadata)
    add_order_indexes(specs, views_near(specs) if views is None else views, metadata)
    return metadata


def _add_fk_stubs(specs: list[TableSpec], metadata: MetaData) -> None:
    """A FOREIGN KEY into a table outside this set (one module's specs on their own) needs the
    target in the MetaData to compile and sort; add a column-only stub, marked `info["stub"]`,
    which DDL output and sync skip."""
    for spec in specs:
        for code in spec.codes:
            if not code.on_delete:
                continue
            target = metadata.tables.get(code.table)
            if target is None:
                target = Table(code.table, metadata, info={"stub": True})
            if target.info.get("stub") and code.valuefield not in target.c:
                target.append_column(Column(code.valuefield, TYPE_MAP[spec.field(code.field).type](
                    spec.field(code.field))))
