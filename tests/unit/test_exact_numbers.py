"""Every numeric spec type stores and reads back its full precision on SQLite, MariaDB and
PostgreSQL, and on SQLite exact decimals stay exact in SQL too: ordered and summed as numbers,
the way the usage report and the distributor usage API sum `amount` (issue 14)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, case, func, select

from app.core.db import dialect_name
from ecosystem_files import ROOT, on_engine, run_statements
from generators.ddl import ddl_statements
from generators.loader import load_specs
from generators.raw_spec import parse_spec
from generators.schema import build_metadata

NUMBERS = parse_spec({
    "summary": [{"name": "numbers", "title": "numbers", "primary": ["id"]}],
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "small", "type": "short"},
        {"name": "whole", "type": "int"},
        {"name": "big", "type": "bigint"},
        {"name": "ratio", "type": "float"},
        {"name": "wide", "type": "double"},
        {"name": "money", "type": "float", "length": 18, "dec": 2},
        {"name": "price", "type": "decimal", "length": 18, "dec": 6},
        {"name": "huge", "type": "decimal", "length": 30, "dec": 10},
    ],
}, "numbers.json")
ROWS = [
    {"id": 1, "small": 32767, "whole": 2**31 - 1, "big": 2**63 - 1, "ratio": 12345.6789, "wide": 0.1 + 0.2,
     "money": Decimal("40000000000000.32"), "price": Decimal("999999999999.999999"),
     "huge": Decimal("12345678901234567890.0123456789")},
    {"id": 2, "small": -32768, "whole": -(2**31), "big": -(2**63), "ratio": 1e300, "wide": 5e-300,
     "money": Decimal("-9999999999999999.99"), "price": Decimal("-0.000001"),
     "huge": Decimal("-99999999999999999999.9999999999")},
    {"id": 3, "small": 0, "whole": 0, "big": 0, "ratio": -2.5, "wide": 1 / 3,
     "money": Decimal("0.01"), "price": Decimal("0"), "huge": Decimal("0")},
]


async def test_every_numeric_type_keeps_its_full_precision(any_db_url):
    await run_statements(any_db_url, ddl_statements([NUMBERS], dialect_name(any_db_url)))
    table = build_metadata([NUMBERS]).tables["numbers"]

    def write_and_read(conn):
        conn.execute(table.insert(), ROWS)
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]

    back = await on_engine(any_db_url, write_and_read)
    assert back == ROWS  # floats equal as 8-byte doubles, decimals to the last digit
    assert [str(r["money"]) for r in back] == ["40000000000000.32", "-9999999999999999.99", "0.01"]


async def test_decimals_order_sum_and_compare_as_numbers_in_sql(any_db_url):
    """The queries the app runs on money: ORDER BY, SUM (also of a CASE, per day), a range filter."""
    specs = load_specs([ROOT / "models" / "pipeline_core", ROOT / "models" / "pipeline_ops"])
    await run_statements(any_db_url, ddl_statements(specs, dialect_name(any_db_url)))
    tables = build_metadata(specs).tables
    usage, pipelines = tables["pipeline_usage_log"], tables["pipelines"]
    amounts = [Decimal("400000000000.32"), Decimal("9.99"), Decimal("10.000001"), Decimal("0.000001")]

    def run(conn):
        conn.execute(pipelines.insert().values(id="p1", code="p", name="P"))
        conn.execute(usage.insert(), [
            {"id": f"u{i}", "pipeline_id": "p1", "distributor_id": "d1", "request_id": f"r{i}", "amount": a,
             "unit_price": a, "status": "succeeded", "started_at": datetime(2024, 1, 1)}
            for i, a in enumerate(amounts)])
        ordered = [r.amount for r in conn.execute(select(usage.c.amount).order_by(usage.c.amount))]
        total = conn.execute(select(func.sum(usage.c.amount))).scalar()
        big = func.sum(case((usage.c.amount > Decimal("10"), usage.c.amount), else_=0))
        over_ten = conn.execute(select(big)).scalar()
        between = conn.execute(select(func.count()).where(and_(usage.c.amount >= Decimal("9.99"),
                                                               usage.c.amount < Decimal("10.000001")))).scalar()
        return ordered, total, over_ten, between

    ordered, total, over_ten, between = await on_engine(any_db_url, run)
    assert ordered == sorted(amounts)
    assert Decimal(total) == sum(amounts) == Decimal("400000000020.310002")
    assert Decimal(over_ten) == Decimal("400000000010.320001")
    assert between == 1
