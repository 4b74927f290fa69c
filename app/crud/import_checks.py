"""The write's checks for a chunk of imported rows at once: one query per code field and per
unique index for the whole chunk, where a form's single write asks once per row.

A 50,000-row file checked row by row is 50,000 round trips per check (minutes, the issue's 96 s
preview); checked 500 rows a query it is a hundred. The answers are the form's (app/crud/store.py):
"no such …" for a code naming no row, "already exists" for a unique clash with another row, then
the module's save rule, which stays per row since a module may ask anything of the database.
MariaDB compares text by its collation (case and accents aside, trailing spaces ignored), so
there a chunk's answer is matched loosely and a clash found so is confirmed by the form's own
query; SQLite compares exactly, and so does the match. The names in code cells (a pipeline's name
for its id) are looked up the same way, a chunk at a time (Resolver).
"""
from __future__ import annotations

import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg, title_of
from app.core.catalog import Catalog, TableView
from app.core.context import AppContext
from app.core.hooks import check_rules
from app.crud.rows import jsonable
from app.crud.store import check_unique

IN_LIMIT = 500  # values bound in one IN (…): well below every driver's limit on parameters


@dataclass
class Pending:
    """A row waiting for its checks: the values it writes and the stored row it updates (or None)."""

    values: dict[str, Any]
    before: dict[str, Any] | None


def exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value.normalize())
    return str(jsonable(value))


def loose(value: Any) -> str:
    """Text as MariaDB's default collation compares it: no case, no accents, no trailing spaces."""
    if not isinstance(value, str):
        return exact(value)
    plain = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    return plain.casefold().rstrip(" ")


def keyer(conn: AsyncConnection) -> Any:
    """How this database matches a bound value against a stored one."""
    return loose if conn.dialect.name in ("mysql", "mariadb") else exact


async def matching(conn: AsyncConnection, column: Any, values: list[Any], *extra: Any) -> list[Any]:
    """Rows of (column, *extra) whose column is one of `values`, asked IN_LIMIT values at a time."""
    distinct = list(dict.fromkeys(values))
    out: list[Any] = []
    for start in range(0, len(distinct), IN_LIMIT):
        out += (await conn.execute(select(column, *extra).where(column.in_(distinct[start:start + IN_LIMIT])))).all()
    return out


async def ref_errors(ctx: AppContext, conn: AsyncConnection, tv: TableView, items: list[Pending]) -> list[dict]:
    """Per row: code fields naming no row of their table (store._check_refs for a chunk)."""
    errors: list[dict[str, str]] = [{} for _ in items]
    key = keyer(conn)
    for code in tv.spec.codes:
        target = ctx.catalog.tables.get(code.table) if code.is_plain_table else None
        if target is None:
            continue
        wanted = [it.values[code.field] for it in items if it.values.get(code.field) is not None]
        if not wanted:
            continue
        found = {key(r[0]) for r in await matching(conn, target.table.c[code.valuefield], wanted)}
        for i, it in enumerate(items):
            v = it.values.get(code.field)
            if v is not None and key(v) not in found:
                errors[i][code.field] = Msg("no such {table}", table=title_of(target.title))
    return errors


async def unique_errors(tv: TableView, conn: AsyncConnection, items: list[Pending]) -> list[dict]:
    """Per row: unique indexes another stored row already holds (store.check_unique for a chunk)."""
    errors: list[dict[str, str]] = [{} for _ in items]
    key, t = keyer(conn), tv.table
    for ix in (ix for ix in tv.spec.indexes if ix.unique):
        merged: dict[int, dict[str, Any]] = {}
        for i, it in enumerate(items):
            if any(n in it.values for n in ix.fields):
                m = {n: it.values.get(n, (it.before or {}).get(n)) for n in ix.fields}
                if all(v is not None for v in m.values()):
                    merged[i] = m
        if not merged:
            continue
        first = ix.fields[0]
        stored: dict[tuple, set[str]] = defaultdict(set)
        for r in await matching(conn, t.c[first], [m[first] for m in merged.values()],
                                *[t.c[n] for n in ix.fields[1:]], t.c[tv.pk]):
            stored[tuple(key(v) for v in r[:-1])].add(str(r[-1]))
        for i, m in merged.items():
            own = str(items[i].before[tv.pk]) if items[i].before else None
            if not stored.get(tuple(key(m[n]) for n in ix.fields), set()) - {own}:
                continue
            if key is loose:  # the collation decides: ask it as the form does
                errors[i] |= await check_unique(conn, tv, {n: m[n] for n in ix.fields if n in items[i].values},
                                                 own, items[i].before)
                continue
            name = next(n for n in ix.fields if n in items[i].values)
            errors[i][name] = Msg('already exists') if len(ix.fields) == 1 else \
                Msg("already exists for this {fields}", fields=", ".join(n for n in ix.fields if n != name))
    return errors


async def rule_errors(conn: AsyncConnection, tv: TableView, item: Pending) -> dict[str, str]:
    """The module's save rule for one row, on the row as it will be (store.check_insert's merge)."""
    if item.before is not None:
        return await check_rules(conn, tv, {**item.before, **item.values}, item.before[tv.pk])
    defaults = {f.name: f.default for f in tv.spec.fields if f.default is not None and f.default != "CURRENT_TIMESTAMP"}
    return await check_rules(conn, tv, {**defaults, **item.values}, None)


async def chunk_errors(ctx: AppContext, conn: AsyncConnection, tv: TableView, items: list[Pending], *,
                       rules: bool = True) -> list[dict]:
    """Per row, what store.check_insert / check_change would refuse, for a chunk of rows; without
    `rules` the caller runs each row's save rule itself, just before writing that row."""
    refs = await ref_errors(ctx, conn, tv, items)
    uniques = await unique_errors(tv, conn, items)
    out = []
    for it, a, b in zip(items, refs, uniques, strict=True):
        errors = a | b
        if not errors and rules:
            errors = await rule_errors(conn, tv, it)
        out.append(errors)
    return out


class Resolver:
    """Code cells → the values they name: the target's text (a pipeline's name; among targets of
    one name, the one under the row's other references, a step of the row's pipeline), else the
    cell itself (an id), which the write's reference check then vouches for."""

    def __init__(self, catalog: Catalog, tv: TableView, names: set[str]):
        self.tv = tv
        self.codes = [(c, catalog.tables[c.table]) for c in tv.spec.codes
                      if c.field in names and c.is_plain_table and c.table in catalog.tables]
        self.cache: dict[tuple, tuple[str | None, str | None]] = {}

    def siblings(self, code: Any, target: TableView) -> list[tuple[str, str]]:
        """(field of this row, field of the target) pairs naming the same table."""
        return [(mine.field, theirs.field) for theirs in target.spec.codes for mine in self.tv.spec.codes
                if mine.field != code.field and mine.table == theirs.table and mine.valuefield == theirs.valuefield]

    async def resolve(self, conn: AsyncConnection, datas: list[dict[str, Any]]) -> list[dict[str, str]]:
        """Replace code cells of each row by what they name, one query per code field for the names
        not seen before; → per row, errors for names that are ambiguous."""
        errors: list[dict[str, str]] = [{} for _ in datas]
        for code, target in self.codes:
            pairs = self.siblings(code, target)
            wanted: dict[tuple, str] = {}
            for data in datas:
                text = str(data.get(code.field) or "").strip()
                if text:
                    key = self._key(code, text, pairs, data)
                    if key not in self.cache:
                        wanted[key] = text
            if wanted:
                await self._lookup(conn, code, target, pairs, wanted)
            for i, data in enumerate(datas):
                text = str(data.get(code.field) or "").strip()
                if not text:
                    continue
                value, error = self.cache[self._key(code, text, pairs, data)]
                if error:
                    errors[i][code.field] = error
                else:
                    data[code.field] = value
        return errors

    @staticmethod
    def _key(code: Any, text: str, pairs: list[tuple[str, str]], data: dict[str, Any]) -> tuple:
        return code.field, text, tuple((m, str(data[m])) for m, _ in pairs if data.get(m))

    async def _lookup(self, conn: AsyncConnection, code: Any, target: TableView, pairs: list[tuple[str, str]],
                      wanted: dict[tuple, str]) -> None:
        tt = target.table
        named: dict[str, list] = {}
        key = keyer(conn)
        for r in await matching(conn, tt.c[code.textfield], list(wanted.values()), tt.c[code.valuefield],
                                *[tt.c[t] for _, t in pairs]):
            named.setdefault(key(r[0]), []).append(r)
        theirs = {m: i + 2 for i, (m, _) in enumerate(pairs)}
        for k, text in wanted.items():
            given = dict(k[2])
            found = [r for r in named.get(key(text), [])
                     if all(str(r[theirs[m]]) == v for m, v in given.items())]
            if len(found) > 1:
                self.cache[k] = None, Msg("{n} rows of {table} are called {text}; use the id", n=len(found),
                                          table=title_of(target.title), text=repr(text))
            else:
                self.cache[k] = (str(found[0][1]) if found else text), None
