"""A list page's rows come from the template the build compiled for its table
(build/templates/rows/), and read exactly as the old per-cell `show()` loop read them: every list
page, both languages, rows with every field type, NULLs, choices (known and not), code lookups
(found, missing, and the row's own snapshot), money, unit prices and times."""
from __future__ import annotations

import re
import shutil
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from markupsafe import escape
from generic_rows import generic_rows
from sqlalchemy import insert, text

from app.core.catalog import TableView, load_catalog
from app.core.db import make_engine
from app.web.app import require_rows_templates
from generators.rows import lit
from helpers import ROOT

ON_MARIADB = pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)

ROWS = 3  # 0: every lookup found; 1: lookups that find nothing, no snapshot; 2: NULLs


def value(catalog: Any, tv: TableView, name: str, n: int) -> Any:
    """Row n's value of a field: deterministic, so a code field can point at its target's row 0."""
    f = tv.fields[name]
    snapshots = {c.snapshot for c in tv.spec.codes if c.snapshot}
    if name in tv.spec.primary:
        return n + 1 if f.is_int else f"r{n}-{tv.name}"[: f.length or 40]
    if f.nullable and (n == 2 or (n == 1 and name in snapshots)):
        return None
    code = tv.spec.code_for(name)
    target = catalog.tables.get(code.table) if code else None
    if target is not None and n == 0:
        return value(catalog, target, code.valuefield, 0)
    if f.choices:
        return f.choices[-n % len(f.choices)].value
    if name == "currency":
        return ("CNY", "JPY", "CNY")[n]
    if f.is_int:
        return 7 * (n + 1) + (900 if code else 0)
    if f.type == "decimal":
        places = f.dec or 0
        whole = (f.length or 10) - places
        base = Decimal("1234.125678") if whole >= 5 else Decimal("1.125678")
        return (base * (n + 1)).quantize(Decimal(1).scaleb(-places))
    if f.is_number:
        return 1.25 * (n + 1)
    if f.type == "date":
        return date(2026, 1, 2 + n)
    if f.type == "time":
        return time(1, 2, 3 + n)
    if f.is_datetime:
        return datetime(2026, 12, 1, 16, 30, 5 + n)  # the next day in Asia/Shanghai
    if f.type == "bin":
        return b"\x00\x01"
    if f.type == "text":
        return f"text <b>{n}</b> & more"
    return f"{n}<&{name}"[: f.length or 40]


async def seed_every_list(ctx: Any) -> list[TableView]:
    catalog = ctx.catalog
    listed = [catalog.tables[r["table"]] for r in catalog.routes if r["kind"] == "list"]
    engine = make_engine(ctx.settings.database)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))  # rows point at rows of tables seeded later
            for tv in listed:
                for n in range(ROWS):
                    row = {f.name: value(catalog, tv, f.name, n) for f in tv.spec.fields}
                    await conn.execute(insert(tv.table).values(**row))
    finally:
        await engine.dispose()
    return listed


def tags_only(html: str) -> str:
    """The page with the whitespace between tags dropped (a browser shows none of it)."""
    return re.sub(r">\s+<", "><", html)


@ON_MARIADB
async def test_compiled_rows_read_as_the_generic_loop(admin):
    listed = await seed_every_list(admin.ctx)
    pages = 0
    for lang in ("zh", "en"):
        await admin.client.get(f"/lang/{lang}", follow_redirects=False)
        for tv in listed:
            compiled = await admin.client.get(tv.base)
            with generic_rows(admin.app):
                generic = await admin.client.get(tv.base)
            assert compiled.status_code == generic.status_code == 200, (tv.name, compiled.text[:300])
            assert compiled.text.count("<tr>") >= ROWS + 1, tv.name
            assert tags_only(compiled.text) == tags_only(generic.text), (lang, tv.name)
            assert f"<html lang=\"{lang}" in compiled.text
            pages += 1
    assert pages == 2 * len(listed) >= 20


@ON_MARIADB
async def test_a_looked_up_text_a_snapshot_money_and_a_time_show(admin):
    catalog = admin.ctx.catalog
    await seed_every_list(admin.ctx)
    page = (await admin.client.get("/pipeline_ops/pipeline_usage_log")).text
    assert f">{escape(value(catalog, catalog.tables['pipeline_usage_log'], 'pipeline_name', 0))}<" in page
    assert "2,468.25" in page and ">2,468<" in page  # CNY to the fen, JPY without minor units
    assert "2026-12-02 00:30:06" in page  # 16:30 UTC, in Asia/Shanghai
    code = catalog.tables["pipeline_steps"].spec.code_for("pipeline_id")
    looked_up = value(catalog, catalog.tables[code.table], code.textfield, 0)
    assert f">{escape(looked_up)}</a>" in (await admin.client.get("/pipeline_core/pipeline_steps")).text


def test_a_build_without_a_tables_rows_refuses_to_start(tmp_path):
    build = tmp_path / "build"
    shutil.copytree(ROOT / "build", build, ignore=shutil.ignore_patterns("locale"))
    catalog = load_catalog(build)
    require_rows_templates(catalog, build)
    (build / "templates" / "rows" / "pipeline_core" / "pipelines.html").unlink()
    with pytest.raises(RuntimeError, match="pipeline_core/pipelines: run ./build.sh"):
        require_rows_templates(catalog, build)


@pytest.mark.parametrize("label", ["a}}b", "it's", "x\\y", "中文 {% raw %}", "100%", "a\nb", "{#c#}"])
def test_a_label_is_written_as_the_text_it_is(label):
    from jinja2 import Environment

    assert Environment().from_string(f"{{{{ {lit(label)} }}}}").render() == label
