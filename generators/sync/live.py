"""The live side of a sync: reading a database's schema, and its types in comparable form.

Types are compared as compiled type strings, normalised (see `norm_type`), because reflected
type classes differ per backend (MariaDB's INTEGER(11), PostgreSQL's NUMERIC) where the DDL does
not. `classify` then says whether a change of type can lose values, and `at_risk_where` which
rows it could lose them in.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Column, MetaData, func, inspect, or_
from sqlalchemy.engine import Connection, Dialect

from generators.sync.dialects import SyncDialect, sync_dialect
from generators.sync.model import SyncError


def read_live(conn: Connection, wanted: MetaData, spec_tables: set[str]) -> tuple[set[str], MetaData]:
    """The database's table names, and the live tables of the specs' tables that exist.

    A foreign key of the specs may point at a table outside them (one module's specs on their
    own); that table must then exist in the database."""
    existing = set(inspect(conn).get_table_names())
    for t in wanted.tables.values():
        if t.info.get("stub") and t.name not in existing:
            raise SyncError(f"a foreign key references table {t.name}, which is neither in the specs "
                            f"nor in the database")
    live = MetaData()
    live.reflect(bind=conn, only=[t for t in wanted.tables if t in existing and t in spec_tables])
    return existing, live


_SYNONYMS = [
    (r"\bCHARACTER VARYING\b", "VARCHAR"), (r"\bCHARACTER\b", "CHAR"), (r"\bBPCHAR\b", "CHAR"),
    (r"\bNUMERIC\b", "DECIMAL"), (r"\bINTEGER\b", "INT"), (r"\bINT4\b", "INT"), (r"\bINT8\b", "BIGINT"),
    (r"\bINT2\b", "SMALLINT"), (r"\bDOUBLE PRECISION\b", "DOUBLE"), (r"\bFLOAT8\b", "DOUBLE"),
    (r"\bFLOAT4\b", "REAL"), (r"\bTIMESTAMP WITHOUT TIME ZONE\b", "TIMESTAMP"),
    (r"\bTIME WITHOUT TIME ZONE\b", "TIME"), (r"\bBOOL\b", "BOOLEAN"),
]


def norm_type(compiled: str, dialect: str) -> str:
    """A compiled type string in canonical form, so the spec's and the reflected type compare equal.

    Upper case, single spaces, no spaces inside parentheses; SQL synonyms folded (NUMERIC →
    DECIMAL, INTEGER → INT, CHARACTER VARYING → VARCHAR ...); MySQL display widths (INT(11)) and
    column charset/collation dropped; DECIMAL(p) = DECIMAL(p,0); and the float names made to mean
    their size: FLOAT is 4 bytes and DOUBLE 8 (PostgreSQL's bare FLOAT is 8 bytes, its REAL 4;
    MySQL's REAL is 8).
    """
    s = re.sub(r"\s+", " ", compiled.upper()).strip()
    s = re.sub(r" (CHARACTER SET|CHARSET|COLLATE) \w+", "", s)
    s = re.sub(r"\s*([(),])\s*", r"\1", s)
    for pattern, repl in _SYNONYMS:
        s = re.sub(pattern, repl, s)
    s = re.sub(r"\b(TINYINT|SMALLINT|MEDIUMINT|INT|BIGINT)\(\d+\)", r"\1", s)
    s = re.sub(r"^DECIMAL\((\d+)\)$", r"DECIMAL(\1,0)", s)
    return sync_dialect(dialect).fold_type(s)


def type_str(type_: Any, dialect: Dialect, rules: SyncDialect) -> str:
    """A column type as `norm_type` writes it, for this engine."""
    try:
        return norm_type(str(type_.compile(dialect=dialect)), rules.name)
    except Exception:  # noqa: BLE001 - a type this dialect cannot name (SQLite's NullType): differs
        return f"UNKNOWN({type_!r})"


_INT_RANGE = {"TINYINT": 2**7, "SMALLINT": 2**15, "MEDIUMINT": 2**23, "INT": 2**31, "BIGINT": 2**63}
_TEXT_SIZE = {"TINYTEXT": 2**8, "TEXT": 2**16, "MEDIUMTEXT": 2**24, "LONGTEXT": 2**32, "CLOB": 2**32}
_FLOAT_SIZE = {"FLOAT": 4, "DOUBLE": 8}
_BLOB_SIZE = {"TINYBLOB": 1, "BLOB": 2, "MEDIUMBLOB": 3, "LONGBLOB": 4, "BYTEA": 4}


def _parse(t: str) -> tuple[str, int | None, int | None]:
    m = re.fullmatch(r"([A-Z ]+?)(?:\((\d+)(?:,(\d+))?\))?", t)
    if not m:
        return t, None, None
    return m.group(1), *(int(g) if g else None for g in m.groups()[1:])


def _text_size(base: str, n: int | None) -> int | None:
    return n if base in ("VARCHAR", "CHAR") else _TEXT_SIZE.get(base)


def _digits_kept(on: int | None, os_: int | None, nn: int | None, ns: int | None) -> bool:
    """Whether (precision, scale) `nn, ns` holds every value of `on, os_` (None: no limit)."""
    if nn is None:
        return True
    if on is None:
        return False
    os_, ns = os_ or 0, ns or 0
    return ns >= os_ and nn - ns >= on - os_


def classify(old: str, new: str) -> str:
    """"widen" (no value can change), "narrow" (same family, smaller) or "retype" (other family:
    DECIMAL ↔ floating point included, whose values differ in kind)."""
    (ob, on, os_), (nb, nn, ns) = _parse(old), _parse(new)
    if ob in _INT_RANGE and nb in _INT_RANGE:
        return "widen" if _INT_RANGE[nb] >= _INT_RANGE[ob] else "narrow"
    if ob == nb == "DECIMAL" and None not in (on, nn):
        return "widen" if _digits_kept(on, os_, nn, ns) else "narrow"
    if ob in _FLOAT_SIZE and nb in _FLOAT_SIZE:  # MySQL's DOUBLE(M,D) rounds to D places
        keeps = _FLOAT_SIZE[nb] >= _FLOAT_SIZE[ob] and _digits_kept(on, os_, nn, ns)
        return "widen" if keeps else "narrow"
    if ob in _BLOB_SIZE and nb in _BLOB_SIZE:
        return "widen" if _BLOB_SIZE[nb] >= _BLOB_SIZE[ob] else "narrow"
    osize, nsize = _text_size(ob, on), _text_size(nb, nn)
    if osize and nsize:
        if nb == "CHAR" and ob != "CHAR":
            return "retype"  # CHAR pads: not a pure widening even when longer
        return "widen" if nsize >= osize else "narrow"
    return "retype"


def why_safe(old: str, new: str) -> str:
    """Why a "widen" change keeps every value, for the plan."""
    base = _parse(new)[0]
    if base in _INT_RANGE:
        return f"every {old} value is within the range of {new}"
    if base == "DECIMAL":
        return f"{new} has at least the integer digits and the decimals of {old}"
    return f"every {old} value is a {new} value unchanged"


_NUMERIC = {*_INT_RANGE, *_FLOAT_SIZE, "DECIMAL"}


def at_risk_where(rules: SyncDialect, col: Column, kind: str, old: str, new: str) -> Any:
    """Rows whose value the new type cannot hold (or may alter), for the data-at-risk count.

    Into DECIMAL(p,s) from any number type, that is a value out of range or with more decimals."""
    base, n, s = _parse(new)
    if base == "DECIMAL" and n is not None and _parse(old)[0] in _NUMERIC:
        return or_(func.abs(col) >= 10 ** (n - (s or 0)), col != func.round(col, s or 0))
    if kind == "retype":
        return col.isnot(None)
    if base in _INT_RANGE:
        return or_(col < -_INT_RANGE[base], col >= _INT_RANGE[base])
    if base in _FLOAT_SIZE and s is not None:
        return or_(func.abs(col) >= 10 ** (n - s), col != func.round(col, s))
    size = _text_size(base, n)
    if size:
        return rules.char_length(col) > size
    return col.isnot(None)
