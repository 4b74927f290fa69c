"""The contains search of a big table: a trigram side table the database keeps filled itself.

A picker's contains rank (`LIKE '%umber 47%'`) can use no B-tree index: it reads a whole index
per field. A spec opts a table in with an index `idxtype: "contains"` on the fields; the compiler
then adds `<table>_lk_contains(gram, row_id, field)`: one row per distinct three-character piece
of each field's lower-cased value (characters, not bytes: 产线名 is one gram), keyed (gram, field,
row_id: a gram of one field is one range). Triggers on insert, update and delete keep it filled,
whatever writes the row (the app, an import, a bulk INSERT), so the runtime reads it and never
writes it. The grams are made by the database's own `LOWER(SUBSTR(...))` only, in the triggers and
for the typed text alike (`app.crud.lookup_contains`), so both sides normalise the same way on
every dialect; positions come
from `lk_gram_positions(n)`, 1..`MAX_CHARS` (a value's grams end there).

What each database writes differently is one small class per dialect (`GramSQL` is PostgreSQL's).
DDL, `db sync` (`generators.sync.grams`) and `metadata.create_all` (an `after_create` hook) all
take the statements from here.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import Column, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

from generators.spec import SpecError, TableSpec

POSITIONS = "lk_gram_positions"
MAX_CHARS = 1024
"""Grams cover a value's first MAX_CHARS characters; a contains field is at most that long."""
FIELD_LENGTH = 64


def gram_table_name(table: str) -> str:
    return f"{table}_lk_contains"


def contains_fields(spec: TableSpec) -> tuple[str, ...]:
    """The fields some `idxtype: "contains"` index of `spec` names, in first-seen order."""
    return tuple(dict.fromkeys(n for ix in spec.indexes if ix.contains for n in ix.fields))


def _check(spec: TableSpec, fields: tuple[str, ...]) -> None:
    if len(spec.primary) != 1:
        raise SpecError(spec.source, spec.name, None, "a contains index needs a one-field primary key")
    for name in fields:
        f = spec.field(name)
        if f.type not in ("str", "char") or not f.length or f.length > MAX_CHARS or len(name) > FIELD_LENGTH:
            raise SpecError(spec.source, spec.name, name,
                            f"a contains index takes str or char fields of at most {MAX_CHARS} characters")


def add_gram_tables(specs: Iterable[TableSpec], metadata: MetaData) -> None:
    """Add `<table>_lk_contains` (and the shared positions table) for each spec with a contains
    index, created after the table it follows, with its triggers."""
    for spec in specs:
        fields = contains_fields(spec)
        source = metadata.tables.get(spec.name)
        if not fields or source is None or source.info.get("stub"):
            continue
        _check(spec, fields)
        positions = metadata.tables.get(POSITIONS)
        if positions is None:
            positions = Table(POSITIONS, metadata, Column("n", Integer, primary_key=True, autoincrement=False),
                              info={"positions": True}, mysql_engine="InnoDB")
            event.listen(positions, "after_create", _run_extra)
        name = gram_table_name(spec.name)
        gram = String(3).with_variant(mysql.VARCHAR(3, collation="utf8mb4_bin"), "mysql", "mariadb")
        table = Table(
            name, metadata,
            Column("gram", gram, nullable=False),
            Column("row_id", source.c[spec.primary[0]].type, nullable=False),
            Column("field", String(FIELD_LENGTH), nullable=False),
            PrimaryKeyConstraint("gram", "field", "row_id", name=f"pk_{name}"),
            info={"grams_of": spec.name, "fields": fields, "pk": spec.primary[0]},
            comment=f"contains search of {spec.name}: trigrams kept by triggers",
            mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci",
        )
        Index(f"{name}_row", table.c.row_id)
        table.add_is_dependent_on(source)
        table.add_is_dependent_on(positions)
        event.listen(table, "after_create", _run_extra)


def _run_extra(target: Table, connection, **_: object) -> None:
    """`create_all` makes the positions and triggers too, as DDL and `db sync` do."""
    for sql in extra_statements(target, connection.dialect):
        connection.exec_driver_sql(sql)


def extra_statements(table: Table, dialect: Dialect) -> list[str]:
    """What follows CREATE TABLE for a table of this file: the positions' rows, or the triggers
    and the fill from the rows already there; nothing for any other table."""
    if table.info.get("positions"):
        return [f"INSERT INTO {POSITIONS} (n) VALUES " + ",".join(f"({n})" for n in range(1, MAX_CHARS + 1))]
    if not table.info.get("grams_of"):
        return []
    sql = gram_sql(dialect)
    return sql.triggers(table) + sql.fill(table)


class GramSQL:
    """The standard's (PostgreSQL's) way: one trigger function for the three events."""

    existing_triggers = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    """A query of the trigger names in this database (schema), for `db sync`."""

    def __init__(self, dialect: Dialect):
        self.q = dialect.identifier_preparer.quote

    def length(self, value: str) -> str:
        return f"CHAR_LENGTH({value})"

    def gram(self, value: str, pos: str) -> str:
        return f"LOWER(SUBSTR({value}, {pos}, 3))"

    def inserts(self, table: Table, row: str, source: str | None = None) -> list[str]:
        """One INSERT per field: the grams of `row` (NEW, or an alias of `source` for a fill)."""
        q, info = self.q, table.info
        origin = f"{q(source)} {row}, " if source else ""
        out = []
        for f in info["fields"]:
            value = f"{row}.{q(f)}"
            out.append(f"INSERT INTO {q(table.name)} (gram, row_id, {q('field')}) "
                       f"SELECT DISTINCT {self.gram(value, 'p.n')}, {row}.{q(info['pk'])}, '{f}' "
                       f"FROM {origin}{POSITIONS} p WHERE p.n <= {self.length(value)} - 2")
        return out

    def delete(self, table: Table) -> str:
        return f"DELETE FROM {self.q(table.name)} WHERE row_id = OLD.{self.q(table.info['pk'])}"

    def fill(self, table: Table) -> list[str]:
        return [f"DELETE FROM {self.q(table.name)}"] + self.inserts(table, "s", table.info["grams_of"])

    def watched(self, table: Table) -> list[str]:
        return [table.info["pk"], *table.info["fields"]]

    def tag(self, table: Table) -> str:
        """The triggers' names carry the fields they fill, so `db sync` sees when they changed."""
        return f"{table.name}_" + hashlib.sha1(",".join(self.watched(table)).encode()).hexdigest()[:6]

    def trigger_names(self, table: Table) -> list[str]:
        return [self.tag(table)]

    def drop_trigger(self, table: Table, name: str) -> str:
        return f"DROP TRIGGER IF EXISTS {self.q(name)} ON {self.q(table.info['grams_of'])}"

    def changed(self, table: Table) -> str:
        return " OR ".join(f"OLD.{self.q(c)} IS DISTINCT FROM NEW.{self.q(c)}" for c in self.watched(table))

    def triggers(self, table: Table) -> list[str]:
        """A function for the three events; the trigger names no column (a column a trigger names
        cannot change type), the function skips an update that leaves the fields alone."""
        q, name, src = self.q, self.tag(table), table.info["grams_of"]
        body = (f"IF TG_OP = 'UPDATE' AND NOT ({self.changed(table)}) THEN RETURN NULL; END IF; "
                f"IF TG_OP <> 'INSERT' THEN {self.delete(table)}; END IF; "
                f"IF TG_OP <> 'DELETE' THEN {'; '.join(self.inserts(table, 'NEW'))}; END IF; RETURN NULL;")
        return [f"CREATE OR REPLACE FUNCTION {q(name + '_fn')}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN {body} END $$",
                self.drop_trigger(table, name),
                f"CREATE TRIGGER {q(name)} AFTER INSERT OR DELETE OR UPDATE ON {q(src)} "
                f"FOR EACH ROW EXECUTE PROCEDURE {q(name + '_fn')}()"]


class RowTriggersSQL(GramSQL):
    """A trigger per event, its body the statements themselves (MySQL, SQLite)."""

    def trigger_names(self, table: Table) -> list[str]:
        return [f"{self.tag(table)}_{event_}" for event_ in ("ai", "au", "ad")]

    def drop_trigger(self, table: Table, name: str) -> str:
        return f"DROP TRIGGER IF EXISTS {self.q(name)}"

    def update_head(self, table: Table) -> str:
        return f"AFTER UPDATE OF {', '.join(self.q(c) for c in self.watched(table))}"

    def compound(self, statements: list[str]) -> str:
        return "BEGIN " + "; ".join(statements) + "; END"

    def update_body(self, table: Table) -> str:
        return self.compound([self.delete(table), *self.inserts(table, "NEW")])

    def triggers(self, table: Table) -> list[str]:
        src = self.q(table.info["grams_of"])
        ai, au, ad = (self.q(n) for n in self.trigger_names(table))
        return [self.drop_trigger(table, n) for n in self.trigger_names(table)] + [
            f"CREATE TRIGGER {ai} AFTER INSERT ON {src} FOR EACH ROW {self.compound(self.inserts(table, 'NEW'))}",
            f"CREATE TRIGGER {au} {self.update_head(table)} ON {src} FOR EACH ROW {self.update_body(table)}",
            f"CREATE TRIGGER {ad} AFTER DELETE ON {src} FOR EACH ROW {self.compound([self.delete(table)])}",
        ]


class SQLiteGramSQL(RowTriggersSQL):
    existing_triggers = "SELECT name FROM sqlite_master WHERE type = 'trigger'"

    def length(self, value: str) -> str:
        return f"LENGTH({value})"  # characters, for text


class MySQLGramSQL(RowTriggersSQL):
    """MySQL/MariaDB: grams and their comparisons are binary (the table's collation folds accents
    and case, which would merge distinct grams); an update that leaves the fields alone is free."""

    existing_triggers = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"

    def gram(self, value: str, pos: str) -> str:
        return f"LOWER(SUBSTR({value}, {pos}, 3)) COLLATE utf8mb4_bin"

    def changed(self, table: Table) -> str:
        q = self.q
        return " OR ".join(f"NOT (OLD.{q(c)} <=> NEW.{q(c)} COLLATE utf8mb4_bin)" for c in self.watched(table))

    def update_head(self, table: Table) -> str:
        return "AFTER UPDATE"

    def update_body(self, table: Table) -> str:
        statements = "; ".join([self.delete(table), *self.inserts(table, "NEW")])
        return f"BEGIN IF {self.changed(table)} THEN {statements}; END IF; END"


_DIALECTS: dict[str, type[GramSQL]] = {"mysql": MySQLGramSQL, "mariadb": MySQLGramSQL, "sqlite": SQLiteGramSQL,
                                       "postgresql": GramSQL}


def gram_sql(dialect: Dialect) -> GramSQL:
    return _DIALECTS.get(dialect.name, GramSQL)(dialect)
