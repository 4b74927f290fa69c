"""The column types and defaults that each database needs in its own way.

- Exact decimals on SQLite. SQLite's DECIMAL has NUMERIC affinity: a value with a fraction is
  stored as an 8-byte float, so 40000000000000.32 would come back as …0.3203125. `SQLiteDecimal`
  stores value × 10^scale as an INTEGER instead, in the same DECIMAL(p, s) column: exact, and
  still ordered and summed correctly by SQLite itself (SUM of integers is exact; the sum is
  scaled back when read). A precision above 18 does not fit a 64-bit integer: such a column is
  text there, exact when stored and read, but ordered and summed as text by SQL.
- Defaults that are not plain literals: the insert time in UTC (the app's clock is UTC, a
  server's CURRENT_TIMESTAMP is its session's local time) and decimal defaults, scaled on SQLite.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from sqlalchemy import DECIMAL, DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

SCALED_MAX_PRECISION = 18
"""The most digits a scaled 64-bit integer holds whole (2^63 > 10^18)."""
_EXACT = Context(prec=1000)


class _PlainDecimal(DECIMAL):
    """DECIMAL(p, s) in the DDL, with no value conversion of its own (SQLiteDecimal does it)."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: Any) -> None:
        return None


class SQLiteDecimal(TypeDecorator):
    """DECIMAL(p, s) on SQLite, exact: value × 10^s as an INTEGER (text when p > 18)."""

    impl = _PlainDecimal
    cache_ok = True

    def __init__(self, precision: int, scale: int):
        super().__init__(precision, scale)
        self.precision, self.scale = precision, scale
        self._quantum = Decimal(1).scaleb(-scale)

    @property
    def scaled(self) -> bool:
        return self.precision <= SCALED_MAX_PRECISION

    @property
    def python_type(self) -> type:
        return Decimal

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine:
        return self.impl_instance if self.scaled else String(self.precision + 2)

    def exact(self, value: Any) -> Decimal:
        """`value` at this column's scale, rounded half away from zero as MySQL and PostgreSQL do."""
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        return number.quantize(self._quantum, rounding=ROUND_HALF_UP, context=_EXACT)

    def stored(self, value: Any) -> int | str:
        """What goes into the column for `value`."""
        number = self.exact(value)
        return int(number.scaleb(self.scale, context=_EXACT)) if self.scaled else str(number)

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | str | None:
        return None if value is None else self.stored(value)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        return str(self.stored(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """A stored integer is scaled back; a float or text was written by plain SQL (or by a
        version that stored floats) and is taken as the value itself."""
        if value is None:
            return None
        if isinstance(value, int) and self.scaled:
            return self.exact(Decimal(value).scaleb(-self.scale, context=_EXACT))
        return self.exact(value)


class InsertTime(ColumnElement):
    """DEFAULT <the insert time in UTC>, spelt per database; SQLite's CURRENT_TIMESTAMP is UTC."""

    inherit_cache = True
    type = DateTime()


class DecimalDefault(ColumnElement):
    """DEFAULT <a decimal> as written; scaled on SQLite, where `SQLiteDecimal` stores it so."""

    inherit_cache = False

    def __init__(self, value: Decimal, precision: int, scale: int):
        self.value, self.column_type = value, SQLiteDecimal(precision, scale)
        self.type = DECIMAL(precision, scale)


@compiles(InsertTime)
def _insert_time(element: InsertTime, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(InsertTime, "postgresql")
def _insert_time_pg(element: InsertTime, compiler: Any, **kw: Any) -> str:
    return "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"


@compiles(InsertTime, "mysql")
def _insert_time_mysql(element: InsertTime, compiler: Any, **kw: Any) -> str:
    return "(UTC_TIMESTAMP())"


@compiles(DecimalDefault)
def _decimal_default(element: DecimalDefault, compiler: Any, **kw: Any) -> str:
    return str(element.value)


@compiles(DecimalDefault, "sqlite")
def _decimal_default_sqlite(element: DecimalDefault, compiler: Any, **kw: Any) -> str:
    stored = element.column_type.stored(element.value)
    return str(stored) if isinstance(stored, int) else compiler.render_literal_value(stored, String())
