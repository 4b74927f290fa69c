"""The picker's lookup, per keystroke, at 100,000 pipelines (and steps) on MariaDB.

    py3/bin/python bench/picker.py [--pipelines 100000] [--repeat 20]

Fills a throwaway MariaDB database (bulk INSERTs through the raw driver) with N pipelines and one
step each, starts `pipeline-app serve`, logs in, and times what a picker asks as someone types,
each keystroke a request over one keep-alive connection: a code typed letter by letter
(prefix ranks, index ranges), a name fragment (starts no code or name: the contains rank, through
pipelines' trigram side table, which the triggers fill as the rows are inserted),
an exact id, and a step name on the price form (options name their pipeline). Beside it, in the
same run and the same way, `GET /healthz`: the floor every request pays (HTTP, middleware). It
prints median and p95 in milliseconds per case, and each case's ratio to the floor's median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import make_database  # noqa: E402
from live_server import Browserless, LiveServer, prepare, server_env  # noqa: E402

PIPELINES = "/api/pipeline_core/pipeline_steps/_lookup/pipeline_id"
STEPS = "/api/pipeline_ops/pipeline_pricing/_lookup/step_id"


async def fill(url: str, n: int) -> list[str]:
    import aiomysql
    from sqlalchemy.engine import make_url

    from app.core.ids import new_id

    u = make_url(url)
    conn = await aiomysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                                  db=u.database, autocommit=False)
    cur = await conn.cursor()
    now = datetime(2026, 11, 1)
    ids = [new_id() for _ in range(n)]
    for start in range(0, n, 5000):
        chunk = list(enumerate(ids[start:start + 5000], start=start))
        await cur.executemany(
            "INSERT INTO pipelines (id, code, name, status, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s)",
            [(pid, f"flow-{i}", f"Pipeline number {i}", "active", now, now) for i, pid in chunk])
        await cur.executemany(
            "INSERT INTO pipeline_steps (id, pipeline_id, seq, name, step_type, timeout_s, retries, created_at) "
            "VALUES (%s,%s,1,%s,'model',60,0,%s)",
            [(new_id(), pid, f"ocr-{i}", now) for i, pid in chunk])
        await conn.commit()
    await cur.execute("ANALYZE TABLE pipelines, pipeline_steps")
    await cur.fetchall()
    conn.close()
    return ids


def typing(word: str, start: int = 1) -> list[str]:
    """What the box holds after each keystroke of `word` (from `start` letters on)."""
    return [word[:i] for i in range(start, len(word) + 1)]


def timed(op: Browserless, path: str, queries: list[dict], repeat: int) -> tuple[list[float], int]:
    samples, shown = [], 0
    for _ in range(repeat):
        for params in queries:
            t = time.perf_counter()
            r = op.http.get(path, params=params, headers={"accept": "application/json"})
            samples.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (path, params, r.status_code, r.text[:300])
            if path != "/healthz":
                shown = len(r.json()["options"])
    return sorted(samples), shown


def p95(samples: list[float]) -> float:
    return samples[max(0, int(len(samples) * 0.95) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    tmp = Path("/tmp/pipeline-bench-picker")
    tmp.mkdir(exist_ok=True)
    url, drop = make_database("mariadb", tmp)
    try:
        env = server_env(url, url, tmp)
        prepare(env, {"bench": ("bench-Passw0rd!", "pipeline.admin")})
        t = time.perf_counter()
        ids = asyncio.run(fill(url, args.pipelines))
        print(f"filled {args.pipelines} pipelines and as many steps in {time.perf_counter() - t:.0f} s")
        last = args.pipelines - 1
        code = f"flow-{last * 7 // 10}"
        cases = [
            ("floor: GET /healthz", "/healthz", [{}]),
            (f"code typed: {code!r}, per keystroke", PIPELINES, [{"q": q} for q in typing(code)]),
            ("name fragment: 'number 4711' (contains)", PIPELINES, [{"q": q} for q in typing("number 4711", 6)]),
            ("exact id (32 hex)", PIPELINES, [{"q": ids[last // 3]}]),
            ("'more results': page 2 of 'flow-1'", PIPELINES, [{"q": "flow-1", "offset": "20"}]),
            ("step name typed: 'ocr-5123' (names its pipeline)", STEPS, [{"q": q} for q in typing("ocr-5123")]),
        ]
        with LiveServer(env) as srv:
            op = Browserless(srv.url)
            op.login("bench", "bench-Passw0rd!")
            for _, path, queries in cases:  # warm up caches and the connection pool
                timed(op, path, queries, 2)
            print(f"{'case':52s} {'median ms':>9s} {'p95 ms':>7s} {'÷ floor':>8s}  options")
            floor = None
            for name, path, queries in cases:
                samples, shown = timed(op, path, queries, args.repeat * (20 if path == "/healthz" else 1))
                med = statistics.median(samples)
                floor = floor or med
                info = "" if path == "/healthz" else str(shown)
                print(f"{name:52s} {med:9.2f} {p95(samples):7.2f} {med / floor:8.1f}  {info}")
    finally:
        drop()


if __name__ == "__main__":
    main()
