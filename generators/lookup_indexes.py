"""Indexes the pickers rely on: every field a lookup searches leads an index of its table.

A picker searches the table a code points at (exact match, then prefix, then contains) on every
keystroke; an exact or prefix match (`LIKE 'abc%'`) is an index range only when the field leads
an index. So the compiler adds one wherever a spec's lookups search a field no index leads,
named `<table>_lk_<field>`, and DDL, `db sync` and the runtime's tables all get it the same way.
The fields a lookup searches are the code's `search` (else its `textfield`), checked here
against the target's spec, as is its `owner`.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Index, MetaData

from generators.spec import SpecError, TableSpec


def lookup_search_fields(specs: Iterable[TableSpec]) -> dict[str, list[str]]:
    """Target table → the fields some lookup into it searches, in first-seen order.

    A lookup naming a field its target lacks (search, owner, valuefield, textfield) is an error;
    a target outside `specs` (one module compiled alone, a sub-select) is not checked here."""
    specs = list(specs)
    by_name = {s.name: s for s in specs}
    wanted: dict[str, list[str]] = {}
    for spec in specs:
        for code in spec.codes:
            target = by_name.get(code.table) if code.is_plain_table else None
            if target is None:
                continue
            names = {f.name for f in target.fields}
            for what, name in [("valuefield", code.valuefield), ("textfield", code.textfield),
                               *(("search", n) for n in code.search), ("owner", code.owner)]:
                if name is not None and name not in names:
                    raise SpecError(spec.source, spec.name, code.field,
                                    f"code {what} {name!r} is not a field of {target.name}")
            if code.owner and not target.code_for(code.owner):
                raise SpecError(spec.source, spec.name, code.field,
                                f"code owner {code.owner!r} is not a lookup field of {target.name}")
            fields = wanted.setdefault(target.name, [])
            fields += [n for n in code.search_fields if n not in fields]
    return wanted


def add_lookup_indexes(specs: Iterable[TableSpec], metadata: MetaData) -> None:
    """Add `<table>_lk_<field>` to the tables in `metadata` for each searched field that leads
    no index (nor the primary key) yet."""
    for table_name, fields in lookup_search_fields(specs).items():
        table = metadata.tables.get(table_name)
        if table is None or table.info.get("stub"):
            continue
        leading = {ix.columns[0].name for ix in table.indexes if len(ix.columns)}
        leading |= {c.name for c in list(table.primary_key.columns)[:1]}
        for name in fields:
            if name not in leading:
                Index(f"{table_name}_lk_{name}", table.c[name])
                leading.add(name)
