"""`db sync` against a database the ecosystem created, in its DDL style (`double(18,2)`,
`TIMESTAMP DEFAULT CURRENT_TIMESTAMP`, quoted defaults, `int` for a short, a 4-byte float):
the safe step is applied and says why it is safe; every step that can alter a stored value is
refused without --allow-destructive, with the rows and values at risk (issue 14)."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text

from app.cli.db_sync import sync_command
from app.core.db import dialect_name, make_engine
from ecosystem_files import ACCT_MODELS, ECOSYSTEM_DDL, on_engine, reflected, run_statements, sql_file
from generators.loader import load_specs
from generators.sync import Plan, apply_sync, plan_sync

USAGE = ACCT_MODELS / "acct_usage.json"
ROWS = ("INSERT INTO acct_usage (id, retries, responsed_seconds, amount, cost, status) VALUES "
        "('a', 3, 1.5, 12345.67, 1.234, 'ok'), ('b', 40000, 0.25, 0.1, 2.5, 'ok'), ('c', 0, NULL, NULL, NULL, '')")


async def plan(url: str, allow_destructive: bool = False) -> Plan:
    engine = make_engine(url)
    try:
        return await plan_sync(engine, load_specs([USAGE]), allow_destructive)
    finally:
        await engine.dispose()


async def apply(url: str, the_plan: Plan) -> None:
    engine = make_engine(url)
    try:
        await apply_sync(engine, the_plan)
    finally:
        await engine.dispose()


def skipped(the_plan: Plan, kind: str) -> dict[str, str]:
    """column → reason of the skipped alters of `kind`."""
    return {s.description.split(":")[0].split(".")[-1]: s.reason for s in the_plan.skipped if s.kind == kind}


async def test_sync_refuses_value_changes_to_an_ecosystem_database(any_db_url, capsys):
    dialect = dialect_name(any_db_url)
    await run_statements(any_db_url, [*sql_file(ECOSYSTEM_DDL / f"acct_usage.{dialect}.sql"), ROWS])
    first = await plan(any_db_url)

    if dialect == "sqlite":  # SQLite retypes only by a table rebuild: listed, never run
        assert not [s for s in first.steps if s.description.startswith("alter column")]
        assert {"amount", "cost", "responsed_seconds"} <= set(skipped(first, "unsupported"))
        return

    widened = [s for s in first.steps if "responsed_seconds" in s.description]
    assert [s.description for s in first.steps] == [w.description for w in widened] and len(widened) == 1
    assert "(widen)" in widened[0].description
    assert widened[0].why.startswith("every ") and "unchanged" in widened[0].why
    refused = skipped(first, "destructive")
    assert "3 row(s); 1 value(s) that SMALLINT cannot hold unchanged" in refused["retries"]
    if dialect == "mysql":  # the ecosystem wrote DOUBLE(18,2) and TIMESTAMP; the spec wants exact money
        assert set(refused) == {"retries", "amount", "cost", "use_time"}
        assert "0 value(s) that DECIMAL(18,2) cannot hold unchanged" in refused["amount"]
        assert "3 non-null value(s) to convert to DATETIME" in refused["use_time"]
    else:  # its PostgreSQL DDL already had NUMERIC(18,2)
        assert set(refused) == {"retries"}

    assert await sync_command(any_db_url, [str(USAGE)], dry_run=True) == 0
    out = capsys.readouterr().out
    assert "safe: every " in out and "Skipped (destructive, with the data at risk" in out
    assert "--allow-destructive" in out

    await apply(any_db_url, first)  # the default: the safe step only
    again = await plan(any_db_url)
    assert not again.steps and skipped(again, "destructive") == refused
    amounts = await on_engine(any_db_url, lambda c: c.execute(text("SELECT amount FROM acct_usage ORDER BY id")).all())
    assert [float(a) if a is not None else None for (a,) in amounts] == [12345.67, 0.1, None]

    # told to: after the value that a SMALLINT cannot hold is fixed, every step runs
    await on_engine(any_db_url, lambda c: c.execute(text("UPDATE acct_usage SET retries = 4 WHERE id = 'b'")))
    forced = await plan(any_db_url, allow_destructive=True)
    assert all(s.destructive and s.risk for s in forced.steps) and not skipped(forced, "destructive")
    await apply(any_db_url, forced)
    assert (await plan(any_db_url)).empty
    columns = await reflected(any_db_url, "acct_usage")
    assert (columns["amount"]["type"].precision, columns["amount"]["type"].scale) == (18, 2)
    assert type(columns["retries"]["type"]).__name__ == "SMALLINT"
    amounts = await on_engine(any_db_url, lambda c: c.execute(text("SELECT amount FROM acct_usage ORDER BY id")).all())
    assert [a for (a,) in amounts] == [Decimal("12345.67"), Decimal("0.10"), None]
