"""The DDL we print is the DDL databases accept: every spec (ours and the ecosystem's) applied to
MariaDB, SQLite and PostgreSQL, then read back: types, defaults, CHECKs, cascading FKs, comments."""
from __future__ import annotations

import json
import subprocess
from decimal import Decimal

import pytest
from helpers import ECOSYSTEM, ROOT, db_inspect
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.db import dialect_name, make_engine
from generators.ddl import ddl_statements
from generators.loader import load_specs
from generators.sync import plan_sync



async def apply_ddl(url: str, paths: list) -> list[str]:
    """Run `ddl_statements` one by one, as printed (a driver with %-params needs `%` doubled)."""
    specs = load_specs(paths)
    statements = ddl_statements(specs, dialect_name(url))
    engine = make_engine(url)
    double = engine.dialect.paramstyle in ("format", "pyformat")
    try:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.exec_driver_sql(sql.replace("%", "%%") if double else sql)
        # Read back: the tables the DDL made are exactly what `db sync` expects to see.
        plan = await plan_sync(engine, specs)
        assert plan.empty, plan.render()
    finally:
        await engine.dispose()
    return [s.name for s in specs]


@pytest.mark.parametrize("which", ["ours", "ecosystem"])
async def test_every_spec_applies(any_db_url, which):
    path = ROOT / "models" if which == "ours" else ECOSYSTEM / "rbac-models"
    names = await apply_ddl(any_db_url, [path])
    side = {"lk_gram_positions", "pipelines_lk_contains"} if which == "ours" else set()  # pipelines' contains index
    assert set(await db_inspect(any_db_url, lambda i: i.get_table_names())) == set(names) | side
    if which == "ours":
        assert {"pipelines", "users", "audit_log"} <= set(names)  # all folders, rbac included
    else:
        assert len(names) == 7


async def test_column_types_defaults_checks_and_cascade(any_db_url):
    await apply_ddl(any_db_url, [ROOT / "models"])
    kind = dialect_name(any_db_url)

    def read(insp):
        return {t: {c["name"]: c for c in insp.get_columns(t)}
                for t in ("pipelines", "pipeline_pricing", "pipeline_steps")}

    cols = await db_inspect(any_db_url, read)
    pid = cols["pipelines"]["id"]
    assert type(pid["type"]).__name__ == "VARCHAR" and pid["type"].length == 32 and not pid["nullable"]
    assert type(cols["pipeline_pricing"]["package_units"]["type"]).__name__ == "BIGINT"  # spec type long
    price = cols["pipeline_pricing"]["unit_price"]["type"]
    assert (price.precision, price.scale) == (18, 6)
    text_type = type(cols["pipelines"]["description"]["type"]).__name__
    assert text_type == ("LONGTEXT" if kind == "mysql" else "TEXT")
    assert "60" in str(cols["pipeline_steps"]["timeout_s"]["default"])
    assert "'draft'" in str(cols["pipelines"]["status"]["default"])

    engine = make_engine(any_db_url)  # sets PRAGMA foreign_keys=ON on SQLite
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO pipelines (id, code, name) VALUES ('p1', 'a', 'A')"))
            await conn.execute(text("INSERT INTO pipeline_steps (id, pipeline_id, name) "
                                    "VALUES ('s1', 'p1', 'one'), ('s2', 'p1', 'two')"))
            await conn.execute(text(
                "INSERT INTO pipeline_pricing (id, pipeline_id, unit_price, effective_from) "
                "VALUES ('r1', 'p1', 0.000123, '2024-01-01 00:00:00')"))
            row = (await conn.execute(text("SELECT status FROM pipelines"))).one()
            assert row.status == "draft"
            step = (await conn.execute(text("SELECT timeout_s, retries, step_type FROM pipeline_steps "
                                            "WHERE id = 's1'"))).one()
            assert (step.timeout_s, step.retries, step.step_type) == (60, 0, "model")
            price_back = (await conn.execute(text("SELECT unit_price FROM pipeline_pricing"))).scalar()
            assert Decimal(str(price_back)) == Decimal("0.000123")
        with pytest.raises(DBAPIError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO pipelines (id, code, name, status) "
                                        "VALUES ('p2', 'b', 'B', 'bogus')"))
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM pipelines WHERE id = 'p1'"))
            left = (await conn.execute(text("SELECT count(*) FROM pipeline_steps"))).scalar()
            left_prices = (await conn.execute(text("SELECT count(*) FROM pipeline_pricing"))).scalar()
        assert (left, left_prices) == (0, 0)
    finally:
        await engine.dispose()


async def test_comment_with_quote_backslash_and_percent(any_db_url, tmp_path):
    title = "O'Brien's \\ table 50% 'done'"
    (tmp_path / "odd.json").write_text(json.dumps({
        "summary": [{"name": "odd_names", "title": title, "primary": ["id"]}],
        "fields": [{"name": "id", "title": "a\\b 'q' %s", "type": "str", "length": 8, "nullable": "no"},
                   {"name": "note", "title": "note", "type": "str", "length": 20, "default": "it's \\ 5%"}],
    }), encoding="utf-8")
    await apply_ddl(any_db_url, [tmp_path])
    if dialect_name(any_db_url) == "sqlite":
        return  # SQLite keeps no comments; applying cleanly is the test

    def read(insp):
        return insp.get_table_comment("odd_names")["text"], {c["name"]: c.get("comment")
                                                            for c in insp.get_columns("odd_names")}

    table_comment, col_comments = await db_inspect(any_db_url, read)
    assert table_comment == title
    assert col_comments["id"] == "a\\b 'q' %s"
    engine = make_engine(any_db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO odd_names (id) VALUES ('x')"))
            assert (await conn.execute(text("SELECT note FROM odd_names"))).scalar() == "it's \\ 5%"
    finally:
        await engine.dispose()


def test_json2ddl_prints_the_ecosystem_tables():
    folder = ECOSYSTEM / "rbac-models"
    done = subprocess.run([str(ROOT / "py3" / "bin" / "json2ddl"), "mysql", str(folder)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    created = [line.split()[2].strip("`\"") for line in done.stdout.splitlines()
               if line.startswith("CREATE TABLE")]
    assert sorted(created) == sorted(p.stem for p in folder.glob("*.json"))
    assert len(created) == 7


def test_json2ddl_one_module_with_foreign_keys_into_another():
    """pipeline_ops references pipelines (pipeline_core): print its DDL without the other module."""
    done = subprocess.run([str(ROOT / "py3" / "bin" / "json2ddl"), "postgresql",
                           str(ROOT / "models" / "pipeline_ops")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "REFERENCES pipelines (id) ON DELETE CASCADE" in done.stdout
    assert "CREATE TABLE pipelines" not in done.stdout


def test_our_rbac_schema_is_the_ecosystems():
    """The RBAC database is shared with the ecosystem's apps: models/rbac/ must describe the same
    tables, keys and columns as the ecosystem's own specs, or the app breaks against a real one."""
    def shape(folder):
        return {s.name: (s.primary, [(f.name, f.type, f.length, f.dec, f.nullable) for f in s.fields],
                         sorted((i.name, i.unique, i.fields) for i in s.indexes))
                for s in load_specs([folder])}

    assert shape(ROOT / "models" / "rbac") == shape(ECOSYSTEM / "rbac-models")
