"""`db sync` against real databases: it adds what the specs add, keeps data, and only destroys
what it is told to, after saying what is at risk. Each test runs on SQLite, MariaDB and PostgreSQL."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, db_inspect, query
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.cli.db_sync import default_models, sync_command
from app.core.db import make_engine
from generators.schema import build_metadata
from generators.loader import load_specs
from generators.sync import (
    Plan,
    SyncError,
    apply_sync,
    classify,
    norm_type,
    plan_sync,
)

PIPELINES = ROOT / "models" / "pipeline_core" / "pipelines.json"
ROWS = [
    {"id": "p1", "code": "alpha", "name": "Alpha", "description": "first\nline", "status": "active",
     "owner": "u1"},
    {"id": "p2", "code": "beta", "name": "Beta", "description": None, "status": "draft", "owner": "u2"},
    {"id": "p3", "code": "gamma", "name": "Gamma", "description": "x" * 3000, "status": "draft",
     "owner": None},
]


async def sync(url: str, paths: list, allow_destructive: bool = False, apply: bool = True) -> Plan:
    engine = make_engine(url)
    try:
        plan = await plan_sync(engine, load_specs(paths), allow_destructive)
        if apply:
            await apply_sync(engine, plan)
        return plan
    finally:
        await engine.dispose()


async def fetch(url: str, sql: str) -> list[dict]:
    return [dict(r._mapping) for r in await query(url, text(sql))]


async def insert_pipelines(url: str, models: Path) -> None:
    table = build_metadata(load_specs([models])).tables["pipelines"]
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(table.insert(), ROWS)
    finally:
        await engine.dispose()


def spec_copy(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(PIPELINES, folder / "pipelines.json")
    return folder, json.loads(PIPELINES.read_text(encoding="utf-8"))


def rewrite(folder: Path, raw: dict) -> None:
    (folder / "pipelines.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")


def columns(insp, table: str) -> dict[str, dict]:
    return {c["name"]: c for c in insp.get_columns(table)}


# ---------------------------------------------------------------- the whole app


async def test_sync_creates_every_app_table_then_plans_nothing(any_db_url):
    plan = await sync(any_db_url, default_models())
    wanted = {s.name for s in load_specs(default_models())}
    assert {"pipelines", "pipeline_steps", "distributors", "audit_log"} <= wanted
    assert "users" not in wanted  # rbac lives in the RBAC database
    side = 2  # the positions and the grams of pipelines' contains index (lookup_grams)
    assert not plan.skipped and len(plan.steps) == len(wanted) + side
    assert set(await db_inspect(any_db_url, lambda i: i.get_table_names())) >= wanted
    again = await sync(any_db_url, default_models())
    assert again.empty, again.render()
    assert "nothing to do" in again.render()


async def test_every_spec_type_reflects_back_equal(any_db_url, tmp_path):
    """Each spec type, after a round trip through the database, compares equal: no phantom retypes."""
    types = ["str", "char", "short", "int", "long", "llong", "longlong", "float", "double", "ddouble",
             "decimal", "date", "time", "datetime", "timestamp", "text", "bin"]
    fields = [{"name": "id", "title": "ID", "type": "int", "nullable": "no"}] + [
        {"name": f"c_{t}", "title": t, "type": t, "length": {"str": 40, "char": 2, "decimal": 12}.get(t),
         "dec": 3 if t == "decimal" else None} for t in types]
    (tmp_path / "all_types.json").write_text(json.dumps({
        "summary": [{"name": "all_types", "title": "All types", "primary": ["id"]}], "fields": fields,
    }), encoding="utf-8")
    await sync(any_db_url, [tmp_path])
    again = await sync(any_db_url, [tmp_path])
    assert again.empty, again.render()


# ---------------------------------------------------------------- the acceptance test


async def test_add_field_and_index_keeps_rows(any_db_url, tmp_path):
    folder, raw = spec_copy(tmp_path)
    await sync(any_db_url, [folder])
    await insert_pipelines(any_db_url, folder)
    before = await fetch(any_db_url, "SELECT * FROM pipelines ORDER BY id")

    raw["fields"].append({"name": "region", "title": "区域", "type": "str", "length": 32, "nullable": "yes"})
    raw["fields"].append({"name": "priority", "title": "优先级", "type": "short", "nullable": "no",
                          "default": "5"})
    raw["indexes"].append({"name": "ix_region", "idxtype": "index", "idxfields": ["region", "status"]})
    rewrite(folder, raw)
    plan = await sync(any_db_url, [folder])
    assert not plan.skipped, plan.render()
    assert [s.description.split(" ")[0:2] for s in plan.steps] == [["add", "column"], ["add", "column"],
                                                                    ["create", "index"]]

    after = await fetch(any_db_url, "SELECT * FROM pipelines ORDER BY id")
    assert [{k: r[k] for k in before[0]} for r in after] == before
    assert [(r["region"], r["priority"]) for r in after] == [(None, 5)] * 3

    def check(insp):
        cols = columns(insp, "pipelines")
        assert cols["region"]["nullable"] and cols["region"]["type"].length == 32
        assert not cols["priority"]["nullable"]
        ix = {i["name"]: i for i in insp.get_indexes("pipelines")}
        assert ix["pipelines_ix_region"]["column_names"] == ["region", "status"]

    await db_inspect(any_db_url, check)
    third = await sync(any_db_url, [folder])
    assert third.empty, third.render()


async def test_not_null_without_default_on_a_table_with_rows_is_added_nullable(any_db_url, tmp_path):
    folder, raw = spec_copy(tmp_path)
    await sync(any_db_url, [folder])
    await insert_pipelines(any_db_url, folder)
    raw["fields"].append({"name": "region", "title": "区域", "type": "str", "length": 32, "nullable": "no"})
    rewrite(folder, raw)
    plan = await sync(any_db_url, [folder])
    assert "added NULL-able" in plan.steps[0].description
    assert (await db_inspect(any_db_url, lambda i: columns(i, "pipelines")))["region"]["nullable"]
    # Still different from the spec, and the difference is a destructive one: reported, not done.
    later = await sync(any_db_url, [folder])
    assert not later.steps and len(later.skipped) == 1
    assert "NULL → NOT NULL" in later.skipped[0].description


async def test_new_column_gets_its_check_and_foreign_key_where_the_dialect_can(any_db_url, tmp_path):
    folder, raw = spec_copy(tmp_path)
    shutil.copy(ROOT / "models" / "system" / "sessions.json", folder / "sessions.json")
    await sync(any_db_url, [folder])
    await insert_pipelines(any_db_url, folder)
    raw["fields"].append({"name": "tier", "title": "Tier", "type": "str", "length": 8, "default": "a",
                          "choices": [{"value": "a"}, {"value": "b"}]})
    raw["fields"].append({"name": "session_id", "title": "Session", "type": "str", "length": 64})
    raw["codes"] = [{"field": "session_id", "table": "sessions", "valuefield": "id", "textfield": "username",
                     "on_delete": "cascade"}]
    rewrite(folder, raw)
    plan = await sync(any_db_url, [folder])
    rows = await fetch(any_db_url, "SELECT tier FROM pipelines")
    assert [r["tier"] for r in rows] == ["a"] * 3
    if any_db_url.startswith("sqlite"):
        assert sorted(s.description for s in plan.skipped) == [
            "add constraint ck_pipelines_tier for new column pipelines.tier",
            "add constraint fk_pipelines_session_id for new column pipelines.session_id"]
        return
    assert not plan.skipped
    engine = make_engine(any_db_url)
    try:
        with pytest.raises(DBAPIError):
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE pipelines SET tier = 'zzz'"))
        with pytest.raises(DBAPIError):
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE pipelines SET session_id = 'nope'"))
    finally:
        await engine.dispose()
    assert (await sync(any_db_url, [folder])).empty


# ---------------------------------------------------------------- destructive changes


async def test_removed_field_is_dropped_only_when_allowed(any_db_url, tmp_path):
    folder, raw = spec_copy(tmp_path)
    await sync(any_db_url, [folder])
    await insert_pipelines(any_db_url, folder)
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "owner"]
    raw["indexes"] = [i for i in raw["indexes"] if "owner" not in i["idxfields"]]  # its contains index
    rewrite(folder, raw)

    plan = await sync(any_db_url, [folder])  # the grams of owner go: a side table's refill only
    assert [s.description for s in plan.steps] == [
        "create the triggers of pipelines_lk_contains and fill it from the rows of pipelines"]
    assert [(s.description, s.kind) for s in plan.skipped] == [("drop column pipelines.owner", "destructive")]
    assert "--allow-destructive" in plan.render()
    rows = await fetch(any_db_url, "SELECT id, owner FROM pipelines ORDER BY id")
    assert [r["owner"] for r in rows] == ["u1", "u2", None]

    plan = await sync(any_db_url, [folder], allow_destructive=True)
    assert plan.at_risk == ["drop column pipelines.owner: 2 non-null value(s) in 3 row(s) will be lost"]
    assert "Data at risk" in plan.render() and "[DESTRUCTIVE]" in plan.render()
    assert "owner" not in await db_inspect(any_db_url, lambda i: columns(i, "pipelines"))
    assert len(await fetch(any_db_url, "SELECT id FROM pipelines")) == 3
    assert (await sync(any_db_url, [folder])).empty


async def test_dropping_an_indexed_column_drops_its_index_first(any_db_url, tmp_path):
    folder, raw = spec_copy(tmp_path)
    await sync(any_db_url, [folder])
    await insert_pipelines(any_db_url, folder)
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "code"]
    raw["indexes"] = [i for i in raw["indexes"] if i["name"] != "uk_code"]
    next(i for i in raw["indexes"] if i["idxtype"] == "contains")["idxfields"] = ["name"]
    rewrite(folder, raw)
    plan = await sync(any_db_url, [folder])  # the triggers no longer name code: it can go
    assert [s.description for s in plan.steps] == [
        "create the triggers of pipelines_lk_contains and fill it from the rows of pipelines"]
    assert [s.description for s in plan.skipped] == ["drop column pipelines.code"]
    plan = await sync(any_db_url, [folder], allow_destructive=True)
    assert "DROP INDEX" in plan.steps[0].sql.upper()

    def check(insp):
        assert "code" not in columns(insp, "pipelines")
        assert "pipelines_uk_code" not in {i["name"] for i in insp.get_indexes("pipelines")}

    await db_inspect(any_db_url, check)
    assert (await sync(any_db_url, [folder])).empty


async def test_narrowing_a_string_is_skipped_without_the_flag(any_db_url, tmp_path):
    folder, raw = spec_copy(tmp_path)
    await sync(any_db_url, [folder])
    await insert_pipelines(any_db_url, folder)
    engine = make_engine(any_db_url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE pipelines SET name = :n WHERE id = 'p1'"), {"n": "N" * 100})
    await engine.dispose()
    next(f for f in raw["fields"] if f["name"] == "name")["length"] = 64
    rewrite(folder, raw)

    plan = await sync(any_db_url, [folder])
    assert not plan.steps and len(plan.skipped) == 1
    sqlite = any_db_url.startswith("sqlite")
    assert plan.skipped[0].kind == ("unsupported" if sqlite else "destructive")
    assert "pipelines.name: VARCHAR(255) → VARCHAR(64) (narrow)" in plan.skipped[0].description
    assert (await db_inspect(any_db_url, lambda i: columns(i, "pipelines")))["name"]["type"].length == 255
    if not sqlite:
        risky = await sync(any_db_url, [folder], allow_destructive=True, apply=False)
        assert risky.steps[0].destructive
        assert "3 row(s); 1 value(s) that VARCHAR(64) cannot hold" in risky.steps[0].risk


async def test_widening_is_a_safe_step(any_db_url, tmp_path):
    folder, raw = spec_copy(tmp_path)
    await sync(any_db_url, [folder])
    await insert_pipelines(any_db_url, folder)
    next(f for f in raw["fields"] if f["name"] == "name")["length"] = 300
    next(f for f in raw["fields"] if f["name"] == "published_version")["type"] = "long"
    rewrite(folder, raw)
    plan = await sync(any_db_url, [folder])
    if any_db_url.startswith("sqlite"):  # honest: SQLite retypes only by a table rebuild
        assert not plan.steps and {s.kind for s in plan.skipped} == {"unsupported"}
        return
    assert len(plan.steps) == 2 and not plan.skipped and not any(s.destructive for s in plan.steps)
    assert (await db_inspect(any_db_url, lambda i: columns(i, "pipelines")))["name"]["type"].length == 300
    assert len(await fetch(any_db_url, "SELECT id FROM pipelines")) == 3
    assert (await sync(any_db_url, [folder])).empty


# ---------------------------------------------------------------- dry run, seed data, CLI


async def test_dry_run_changes_nothing(db_url, tmp_path, capsys):
    folder, raw = spec_copy(tmp_path)
    assert await sync_command(db_url, [str(folder)], dry_run=True) == 0
    assert "create table pipelines" in capsys.readouterr().out
    assert await db_inspect(db_url, lambda i: i.get_table_names()) == []

    assert await sync_command(db_url, [str(folder)], dry_run=False) == 0
    raw["fields"].append({"name": "region", "title": "区域", "type": "str", "length": 32})
    rewrite(folder, raw)
    capsys.readouterr()
    assert await sync_command(db_url, [str(folder)], dry_run=True) == 0
    assert "add column pipelines.region" in capsys.readouterr().out
    assert "region" not in await db_inspect(db_url, lambda i: columns(i, "pipelines"))


async def test_seed_rows_are_inserted_into_new_tables(db_url, tmp_path):
    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "kinds.json").write_text(json.dumps({
        "summary": [{"name": "kinds", "title": "Kinds", "primary": ["id"]}],
        "fields": [{"name": "id", "title": "ID", "type": "str", "length": 8, "nullable": "no"},
                   {"name": "lvl", "title": "Level", "type": "int"},
                   {"name": "since", "title": "Since", "type": "date"}],
        "data": [{"id": "a", "lvl": "1", "since": "2024-01-31"}, {"id": "b", "lvl": 2}],
    }), encoding="utf-8")
    plan = await sync(db_url, [folder])
    assert [s.description for s in plan.steps] == ["create table kinds (3 columns, 0 indexes)",
                                                   "insert 2 seed row(s) into kinds"]
    rows = await fetch(db_url, "SELECT id, lvl, since FROM kinds ORDER BY id")
    assert [(r["id"], r["lvl"], str(r["since"])) for r in rows] == [("a", 1, "2024-01-31"), ("b", 2, "None")]
    assert (await sync(db_url, [folder])).empty  # seeds go in with the table, once


async def test_foreign_key_into_a_table_outside_the_specs(db_url, tmp_path):
    """One module synced on its own: its FKs may point at tables the database already has."""
    core = ROOT / "models" / "pipeline_core"
    with pytest.raises(SyncError, match="references table pipelines"):
        await sync(db_url, [core / "pipeline_steps.json"])
    await sync(db_url, [core / "pipelines.json"])
    plan = await sync(db_url, [core / "pipeline_steps.json"])
    assert [s.description.split(" (")[0] for s in plan.steps] == ["create table pipeline_steps"]


def test_norm_type_folds_dialect_spellings():
    assert norm_type("NUMERIC(18, 6)", "postgresql") == norm_type("DECIMAL(18,6)", "mysql") == "DECIMAL(18,6)"
    assert norm_type("INTEGER(11)", "mysql") == norm_type("int", "sqlite") == "INT"
    assert norm_type("BIGINT(20)", "mysql") == "BIGINT"
    assert norm_type("character varying(32)", "postgresql") == "VARCHAR(32)"
    assert norm_type("VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", "mysql") == "VARCHAR(32)"
    assert norm_type("FLOAT", "postgresql") == norm_type("DOUBLE PRECISION", "postgresql") == "DOUBLE"
    assert norm_type("FLOAT", "mysql") == "FLOAT" and norm_type("REAL", "postgresql") == "FLOAT"
    assert norm_type("TIMESTAMP WITHOUT TIME ZONE", "postgresql") == "TIMESTAMP"
    assert norm_type("DECIMAL(10)", "mysql") == "DECIMAL(10,0)"


@pytest.mark.parametrize("old,new,kind", [
    ("VARCHAR(255)", "VARCHAR(64)", "narrow"), ("VARCHAR(64)", "VARCHAR(255)", "widen"),
    ("DECIMAL(18,6)", "DECIMAL(10,2)", "narrow"), ("DECIMAL(10,2)", "DECIMAL(18,6)", "widen"),
    ("DECIMAL(10,2)", "DECIMAL(10,4)", "narrow"), ("BIGINT", "INT", "narrow"),
    ("SMALLINT", "BIGINT", "widen"), ("VARCHAR(64)", "LONGTEXT", "widen"),
    ("LONGTEXT", "VARCHAR(64)", "narrow"), ("TEXT", "LONGTEXT", "widen"),
    ("VARCHAR(3)", "CHAR(3)", "retype"), ("VARCHAR(32)", "INT", "retype"), ("DOUBLE", "FLOAT", "narrow"),
    ("DATETIME", "DATE", "retype"),
])
def test_classify(old, new, kind):
    assert classify(old, new) == kind


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "py3" / "bin" / "pipeline-app"), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_cli_db_sync_end_to_end(tmp_path):
    folder, _ = spec_copy(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    dry = _cli("db", "sync", "--url", url, "--models", str(folder), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "create table pipelines" in dry.stdout and "Dry run" in dry.stdout
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    done = _cli("db", "sync", "--url", url, "--models", str(folder))
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE pipelines" in done.stdout and "Applied 3 step(s)." in done.stdout  # + positions, grams
    again = _cli("db", "sync", "--url", url, "--models", str(folder))
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_cli_db_sync_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "t.json").write_text('{"summary": [{"name": "t", "primary": ["id"]}], "fields": [], "oops": 1}')
    spec_err = _cli("db", "sync", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--models", str(bad))
    assert spec_err.returncode == 2 and "oops" in spec_err.stderr
    folder, _ = spec_copy(tmp_path)
    down = _cli("db", "sync", "--url", "mysql://root@127.0.0.1:1/nowhere", "--models", str(folder))
    assert down.returncode == 1
    assert down.stderr.startswith("pipeline-app db sync: ") and len(down.stderr.strip().splitlines()) == 1
