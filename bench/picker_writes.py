"""What the contains search costs writes: bulk INSERTs of pipelines with and without its triggers.

    py3/bin/python bench/picker_writes.py [--pipelines 20000]

On a throwaway MariaDB database made by `pipeline-app db sync`: N pipelines inserted (bulk
INSERTs of 5,000 through the raw driver, as an import writes) with the contains triggers dropped,
and 2,000 of their names updated one row per statement and commit; then the `db sync` that makes
the triggers again and fills the side table from those rows (the command's start included); then
as many rows inserted and updated again with the triggers on. Prints seconds and rows per second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import make_database  # noqa: E402
from live_server import cli, server_env  # noqa: E402


async def _connect(url: str):
    import aiomysql
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return await aiomysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                                  db=u.database, autocommit=False)


async def insert(url: str, start: int, n: int) -> float:
    conn = await _connect(url)
    cur = await conn.cursor()
    now = datetime(2026, 11, 1)
    t = time.perf_counter()
    for first in range(start, start + n, 5000):
        await cur.executemany(
            "INSERT INTO pipelines (id, code, name, status, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s)",
            [(f"p{i:08d}", f"flow-{i}", f"Pipeline number {i}", "active", now, now)
             for i in range(first, min(first + 5000, start + n))])
        await conn.commit()
    conn.close()
    return time.perf_counter() - t


async def rename(url: str, start: int, n: int) -> float:
    conn = await _connect(url)
    cur = await conn.cursor()
    t = time.perf_counter()
    for i in range(start, start + n):
        await cur.execute("UPDATE pipelines SET name = %s WHERE id = %s", (f"Renamed line {i}", f"p{i:08d}"))
        await conn.commit()
    conn.close()
    return time.perf_counter() - t


async def drop_triggers(url: str) -> None:
    conn = await _connect(url)
    cur = await conn.cursor()
    await cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")
    for (name,) in await cur.fetchall():
        await cur.execute(f"DROP TRIGGER {name}")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, default=20_000)
    args = ap.parse_args()
    n = args.pipelines
    tmp = Path("/tmp/pipeline-bench-picker-writes")
    tmp.mkdir(exist_ok=True)
    url, drop = make_database("mariadb", tmp)
    try:
        env = server_env(url, url, tmp)
        cli(env, "db", "sync", "--url", url)
        asyncio.run(drop_triggers(url))
        rows = [("insert, without the contains triggers", n, asyncio.run(insert(url, 0, n))),
                ("update of a name, without", 2000, asyncio.run(rename(url, 0, 2000)))]
        t = time.perf_counter()
        cli(env, "db", "sync", "--url", url)
        rows.append(("db sync: triggers made, side table filled", n, time.perf_counter() - t))
        rows += [("insert, with the contains triggers", n, asyncio.run(insert(url, n, n))),
                 ("update of a name, with", 2000, asyncio.run(rename(url, n, 2000)))]
        for what, count, seconds in rows:
            print(f"{what:45s} {count:7d} rows {seconds:7.2f} s {count / seconds:9.0f} rows/s")
    finally:
        drop()


if __name__ == "__main__":
    main()
