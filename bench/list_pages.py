"""List-page timings on big tables, against the real server on MariaDB.

    py3/bin/python bench/list_pages.py [--pipelines 10000] [--usage 1000000] [--repeat 20]

Fills a fresh MariaDB database with N pipelines and M usage-log rows (bulk INSERTs through the
raw driver, so filling is fast), starts `pipeline-app serve`, logs in, and times, per page kind,
`--repeat` sequential requests (median and p95, milliseconds): the pipelines list (first page,
page 150 and the last page by number, a search, a sort), and the usage log (first page, page
150, the page 500,000 rows deep reached by a cursor, a pipeline filter, a time-range filter).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import make_database  # noqa: E402
from live_server import Browserless, LiveServer, prepare, server_env  # noqa: E402


async def fill(url: str, pipelines: int, usage: int) -> list[str]:
    import aiomysql
    from sqlalchemy.engine import make_url

    from app.core.ids import new_id

    u = make_url(url)
    conn = await aiomysql.connect(
        host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", db=u.database, autocommit=False
    )
    cur = await conn.cursor()
    now = datetime(2026, 11, 1)
    ids = [new_id() for _ in range(pipelines)]
    for start in range(0, pipelines, 2000):
        await cur.executemany(
            "INSERT INTO pipelines (id, code, name, status, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s)",
            [
                (pid, f"bench-{i}", f"Bench pipeline {i}", random.choice(["draft", "active", "disabled"]), now, now)
                for i, pid in enumerate(ids[start : start + 2000], start=start)
            ],
        )
    await conn.commit()
    hot = ids[:50]
    t0 = datetime(2026, 1, 1)
    batch = 5000
    for start in range(0, usage, batch):
        rows = []
        for i in range(start, min(start + batch, usage)):
            at = t0 + timedelta(seconds=i * 25)
            rows.append(
                (
                    f"{int(at.timestamp() * 1000):012x}{i:020x}",
                    random.choice(hot),
                    1,
                    None,
                    f"r{i}",
                    1,
                    "0.120000",
                    "0.120000",
                    "CNY",
                    "succeeded",
                    at,
                    at + timedelta(seconds=2),
                )
            )
        await cur.executemany(
            "INSERT INTO pipeline_usage_log (id, pipeline_id, version_no, distributor_id, request_id, units, "
            "unit_price, amount, currency, status, started_at, finished_at) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            rows,
        )
        await conn.commit()
    await cur.execute("ANALYZE TABLE pipelines, pipeline_usage_log")
    await cur.fetchall()
    conn.close()
    return ids


async def deep_cursor(url: str, depth: int) -> str:
    """The `after` cursor of the usage log's row `depth` rows into its default order (newest
    first): its order values, as the list's own next link would carry them."""
    import aiomysql
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = await aiomysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                                  db=u.database)
    cur = await conn.cursor()
    await cur.execute("SELECT started_at, id FROM pipeline_usage_log ORDER BY started_at DESC, id DESC "
                      "LIMIT 1 OFFSET %s", (depth - 1,))
    started_at, row_id = await cur.fetchone()
    conn.close()
    return base64.urlsafe_b64encode(json.dumps([started_at.isoformat(sep=" "), row_id]).encode()).decode()


def timed(op: Browserless, path: str, params: dict, repeat: int) -> tuple[float, float, dict]:
    samples, body = [], {}
    for _ in range(repeat):
        t = time.perf_counter()
        r = op.http.get(path, params=params)
        samples.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, params, r.status_code, r.text[:300])
        body = r
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, default=10_000)
    ap.add_argument("--usage", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    tmp = Path("/tmp/pipeline-bench-list")
    tmp.mkdir(exist_ok=True)
    url, drop = make_database("mariadb", tmp)
    env = server_env(url, url, tmp)
    prepare(env, {"bench": ("bench-Passw0rd!", "pipeline.admin")})
    t = time.perf_counter()
    ids = asyncio.run(fill(url, args.pipelines, args.usage))
    print(f"filled {args.pipelines} pipelines and {args.usage} usage rows in {time.perf_counter() - t:.0f} s")
    try:
        with LiveServer(env) as srv:
            op = Browserless(srv.url)
            op.login("bench", "bench-Passw0rd!")
            deep = asyncio.run(deep_cursor(url, 500_000))
            cases = [
                ("pipelines: first page", "/pipeline_core/pipelines", {}),
                ("pipelines: page 150", "/pipeline_core/pipelines", {"page": "150"}),
                ("pipelines: page 500 (the last)", "/pipeline_core/pipelines", {"page": "500"}),
                ("pipelines: search 'pipeline 77'", "/pipeline_core/pipelines", {"q": "pipeline 77"}),
                ("pipelines: sort by name", "/pipeline_core/pipelines", {"sort": "name"}),
                ("pipelines: status filter", "/pipeline_core/pipelines", {"status": "active"}),
                ("pipelines API: first page", "/api/pipeline_core/pipelines", {}),
                ("usage: first page", "/pipeline_ops/pipeline_usage_log", {}),
                ("usage: page 150", "/pipeline_ops/pipeline_usage_log", {"page": "150"}),
                ("usage: 500,000 rows deep (cursor)", "/pipeline_ops/pipeline_usage_log", {"after": deep}),
                ("usage API: first page", "/api/pipeline_ops/pipeline_usage_log", {}),
                ("usage API: 500,000 rows deep (cursor)", "/api/pipeline_ops/pipeline_usage_log", {"after": deep}),
                ("usage: one pipeline", "/pipeline_ops/pipeline_usage_log", {"pipeline_id": ids[0]}),
                (
                    "usage: one week",
                    "/pipeline_ops/pipeline_usage_log",
                    {"started_at__from": "2026-03-01T00:00", "started_at__to": "2026-03-08T00:00"},
                ),
            ]
            print(f"{'page':45s} {'median ms':>10s} {'p95 ms':>8s}  rows shown / total")
            for name, path, p in cases:
                med, p95, r = timed(op, path, p, args.repeat)
                info = ""
                if path.startswith("/api/"):
                    j = r.json()
                    info = f"{len(j['rows'])} / {j['total']}{'+' if j.get('total_is_estimate') else ''}"
                print(f"{name:45s} {med:10.1f} {p95:8.1f}  {info}")
    finally:
        drop()


if __name__ == "__main__":
    main()
