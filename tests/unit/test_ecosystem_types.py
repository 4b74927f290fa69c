"""The ecosystem's table specs, real and in its style, compile, apply on SQLite, MariaDB and
PostgreSQL, and read back as the column types the spec asks for (issue 14).

Money written as `float` with a scale is an exact DECIMAL, a `float` without one an 8-byte
double, SQL names (`bigint`, `tinyint`, `varchar`) are their spec types, a `timestamp` without a
default is the insert time (UTC) and a `""` default is kept.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.core.catalog import TableView
from app.core.db import dialect_name, make_engine
from app.crud.validate import validate_input
from generators.ddl import ddl_statements
from generators.loader import load_specs
from generators.schema import build_metadata
from generators.sync import plan_sync
from generators.views import check_view
from ecosystem_files import ACCT_MODELS, RBAC_MODELS, on_engine, reflected, run_statements

EIGHT_BYTES = {"DOUBLE", "DOUBLE_PRECISION"}


def kind(column: dict) -> str:
    return type(column["type"]).__name__


async def test_ecosystem_specs_apply_and_read_back(any_db_url):
    specs = load_specs([RBAC_MODELS, ACCT_MODELS])
    assert len(specs) == 9
    await run_statements(any_db_url, ddl_statements(specs, dialect_name(any_db_url)))

    engine = make_engine(any_db_url)
    try:
        assert (await plan_sync(engine, specs)).empty  # what was applied reads back as the specs
    finally:
        await engine.dispose()

    usage, pricing, users = [await reflected(any_db_url, t) for t in ("acct_usage", "acct_pricing", "users")]
    for column, scale in ((usage["amount"], 2), (usage["cost"], 3), (pricing["unit_price"], 6)):
        assert kind(column) in ("DECIMAL", "NUMERIC"), column
        assert (column["type"].precision, column["type"].scale) == (18, scale)
    assert kind(usage["responsed_seconds"]) in EIGHT_BYTES  # never a 4-byte FLOAT / REAL
    assert kind(usage["tokens"]) == "BIGINT"
    assert kind(usage["retries"]) == kind(pricing["enabled"]) == "SMALLINT"  # short, tinyint
    assert kind(pricing["name"]) == "VARCHAR" and pricing["name"]["type"].length == 100
    for column in (usage["use_time"], pricing["created_at"], users["last_login"]):
        default = str(column["default"]).upper()
        assert "CURRENT_TIMESTAMP" in default or "UTC_TIMESTAMP" in default, column
    assert "''" in str(usage["status"]["default"]) and not usage["status"]["nullable"]


async def test_timestamp_is_the_utc_insert_time_and_empty_default_is_kept(any_db_url):
    specs = load_specs([ACCT_MODELS])
    await run_statements(any_db_url, ddl_statements(specs, dialect_name(any_db_url)))
    table = build_metadata(specs).tables["acct_usage"]

    def insert_and_read(conn):
        conn.execute(table.insert().values(id="u1", amount="12.5"))
        return conn.execute(select(table.c.use_time, table.c.status, table.c.amount)).one()

    row = await on_engine(any_db_url, insert_and_read)
    assert abs(row.use_time - datetime.utcnow()) < timedelta(minutes=2)  # noqa: DTZ003 - the app is naive UTC
    assert row.status == ""
    assert str(row.amount) == "12.50"


def test_sql_type_names_are_read_as_spec_types():
    usage = {s.name: s for s in load_specs([ACCT_MODELS])}["acct_usage"]
    got = {f.name: (f.type, f.length, f.dec, f.written_type) for f in usage.fields}
    assert got["tokens"] == ("long", None, None, "bigint")
    assert got["amount"] == ("decimal", 18, 2, "float")
    assert got["responsed_seconds"] == ("float", None, None, None)
    assert usage.field("use_time").default == "CURRENT_TIMESTAMP"
    assert usage.field("status").default == ""


@pytest.fixture
def usage_view() -> TableView:
    specs = {s.name: s for s in load_specs([ACCT_MODELS])}
    spec = specs["acct_usage"]
    options = check_view(spec, {"params": {"editexclouded": ["id"]}}, "v.json", specs).options
    return TableView("acct_usage", "acct", spec, options, build_metadata(specs.values()).tables["acct_usage"])


def test_what_a_value_may_be_for_the_new_types(usage_view):
    values, errors = validate_input(usage_view, {"amount": "40000000000000.32", "responsed_seconds": "12345.6789",
                                                 "tokens": str(2**63 - 1), "status": "", "use_time": ""},
                                    creating=True, strict=True)
    assert errors == {}
    assert str(values["amount"]) == "40000000000000.32" and values["responsed_seconds"] == 12345.6789
    assert values["tokens"] == 2**63 - 1
    assert values["status"] == ""  # "" is this field's default: a value it may hold
    assert "use_time" not in values  # empty on create: the database writes the insert time
    _, errors = validate_input(usage_view, {"amount": "1.234", "tokens": str(2**63)}, creating=True, strict=True)
    assert errors == {"amount": "at most 2 decimal places", "tokens": "out of range"}
