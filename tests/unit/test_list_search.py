"""A list's search box (`q`) on a table whose searched fields all have grams (pipelines: code, name
and owner) reads the rows through the side table instead of testing every row: it finds exactly
what the scan would, a row written after a search counted a gram as absent included, and on
MariaDB neither the page nor its count reads the whole table."""
from __future__ import annotations

from helpers import sent_statements
from sqlalchemy import insert, text

from app.crud.query import ListQuery, list_rows
from conftest import app_settings, make_database

ROWS = [{"id": f"p{i:03d}", "code": f"flow-{i}", "name": f"Flow number {i}", "owner": f"team{i % 7}",
         "status": "active"} for i in range(40)] + [
    {"id": "pk1", "code": "alpha-7311-x", "name": "Pipeline of Kestrel", "owner": "ops", "status": "active"},
    {"id": "pcn", "code": "east-7", "name": "华东产线七号", "owner": "李雷", "status": "draft"},
    {"id": "pct", "code": "odd_50%_off", "name": "Sale", "owner": None, "status": "draft"}]


def scanned(q: str) -> set[str]:
    """What a `LIKE '%q%'` over code, name and owner finds (ASCII case folded, as every database here)."""
    return {r["id"] for r in ROWS if any(q.lower() in (r[f] or "").lower() for f in ("code", "name", "owner"))}


async def search(ctx, q: str, **filters) -> tuple[set[str], int]:
    result = await list_rows(ctx, ctx.catalog.tables["pipelines"], ListQuery(q=q, rows=500, filters=filters))
    return {r["id"] for r in result["rows"]}, result["total"]


async def test_a_search_through_the_grams_finds_what_the_scan_finds(ctx, monkeypatch):
    await _insert(ctx, ROWS)
    for q in ("ber 3", "FLOW-1", "pha-73", "of kestr", "team3", "产线七", "50%_o", "zzz-nothing", "ow"):
        with sent_statements(ctx.db, monkeypatch) as sent:
            ids, total = await search(ctx, q)
        assert ids == scanned(q) and total == len(ids), q
        (sql, _), = sent  # the page, its count in it
        assert ("pipelines_lk_contains" in sql) == (len(q) >= 3), (q, sql)  # two characters make no gram: the scan
    ids, total = await search(ctx, "flow", status="active")
    assert ids == scanned("flow") and total == 40  # with a filter beside it


async def test_a_row_written_after_a_search_found_nothing_is_found_at_once(ctx):
    """The gram counts are kept a minute to choose the rarest gram; a zero among them must never
    hide a row written since (the picker and the list share the counts)."""
    await _insert(ctx, ROWS)
    assert await search(ctx, "zebra cross") == (set(), 0)
    await _insert(ctx, [{"id": "pz", "code": "zc-1", "name": "Zebra crossing", "owner": "x", "status": "draft"}])
    assert await search(ctx, "zebra cross") == ({"pz"}, 1)
    assert await search(ctx, "bra cro") == ({"pz"}, 1)


async def test_mariadb_answers_a_search_from_the_side_table(tmp_path, monkeypatch):
    """EXPLAIN of the statement a search page sends: the pipelines rows are read by primary key
    from the side table's range, for the page and for its count; no full read of the table."""
    from app.core.catalog import load_catalog
    from app.core.context import AppContext
    from app.core.db import make_engine
    from helpers import ROOT

    url, drop = make_database("mariadb", tmp_path)
    ctx = AppContext(app_settings(url, url, tmp_path), load_catalog(ROOT / "build"), db=make_engine(url))
    try:
        async with ctx.db.begin() as conn:
            await conn.run_sync(ctx.catalog.metadata.create_all)
        await _insert(ctx, [{"id": f"q{i:05d}", "code": f"bench-{i}", "name": f"Bench pipeline {i}",
                             "owner": f"owner{i}", "status": "active"} for i in range(3000)])
        async with ctx.db.begin() as conn:
            await conn.execute(text("ANALYZE TABLE pipelines, pipelines_lk_contains"))
        with sent_statements(ctx.db, monkeypatch) as sent:
            ids, total = await search(ctx, "bench-77")
        assert total == 11 and len(ids) == total  # bench-77 and bench-770 … bench-779
        (sql, params), = sent
        async with ctx.db.connect() as conn:
            plan = (await conn.exec_driver_sql("EXPLAIN " + sql, params)).mappings().all()
        on_table = [p for p in plan if p["table"] == "pipelines"]
        assert on_table and all(p["type"] == "eq_ref" for p in on_table), plan
        grams = [p for p in plan if p["table"] == "pipelines_lk_contains"]
        assert len(grams) == 2 and all(p["type"] == "range" for p in grams), plan  # the page and the count
    finally:
        await ctx.db.dispose()
        drop()


async def _insert(ctx, rows: list[dict]) -> None:
    async with ctx.db.begin() as conn:
        await conn.execute(insert(ctx.catalog.tables["pipelines"].table), rows)
