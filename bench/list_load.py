"""List pages under load: requests/s, p99 and server CPU per request, against `GET /healthz`.

    py3/bin/python bench/list_load.py [--pipelines 10000] [--duration 10] [--connections 16]

Fills a fresh MariaDB database (`$PIPELINE_TEST_MARIADB`) with N pipelines (`list_pages.fill`),
starts `pipeline-app serve` (1 worker), logs in, and loads, one case after the other, the
pipelines' first list page, page 150, a search, the JSON list and `/healthz` with C keep-alive
connections sending the session cookie. Prints per case req/s, p99, the server's CPU ms per
request (from /proc) and req/s ÷ /healthz's, with the load average before and after. The
database and the folder are dropped at the end.

The load generator is a raw HTTP/1.1 client on uvloop in a process of its own (wrk is not
installed on every machine): it takes some of the 2 cores from the server, so compare req/s of
one run or of runs with the same generator; CPU ms per request is the server's alone.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from dist_admit import cpu_seconds  # noqa: E402
from harness import scratch  # noqa: E402
from list_pages import fill  # noqa: E402
from live_server import Browserless, LiveServer  # noqa: E402

PASSWORD = "bench-Passw0rd!"
HTML, JSON = "text/html,application/xhtml+xml", "application/json"
CASES = (("first page", "/pipeline_core/pipelines", HTML),
         ("page 150", "/pipeline_core/pipelines?page=150", HTML),
         ("search 'pipeline 77'", "/pipeline_core/pipelines?q=pipeline+77", HTML),
         ("JSON list API", "/api/pipeline_core/pipelines", JSON),
         ("/healthz", "/healthz", JSON))
_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


async def _hammer(port: int, request: bytes, connections: int, seconds: float) -> tuple[int, int, list[float]]:
    """`connections` keep-alive loops sending `request` for `seconds` → (ok, failed, latencies)."""
    ok = failed = 0
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal ok, failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - started)
            if head[9:10] == b"2":
                ok += 1
            else:
                failed += 1
        writer.close()

    await asyncio.gather(*(loop() for _ in range(connections)))
    return ok, failed, latencies


def _generator(port: int, request: bytes, connections: int, seconds: float, out: multiprocessing.Queue) -> None:
    import uvloop

    out.put(uvloop.run(_hammer(port, request, connections, seconds)))


def load(port: int, pid: int, path: str, headers: dict[str, str], connections: int, seconds: float) -> dict:
    """One case: req/s, p99 (ms), the server's CPU ms per request, failures."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    out: multiprocessing.Queue = multiprocessing.Queue()
    cpu = cpu_seconds(pid)
    gen = multiprocessing.Process(target=_generator, args=(port, request, connections, seconds, out))
    gen.start()
    ok, failed, latencies = out.get()
    gen.join()
    cpu = cpu_seconds(pid) - cpu
    latencies.sort()
    done = max(1, ok + failed)
    return {"rps": done / seconds, "p99": 1000 * latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0,
            "cpu_ms": 1000 * cpu / done, "failed": failed}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=10, help="seconds of load per case")
    ap.add_argument("--connections", type=int, default=16)
    opts = ap.parse_args()
    mariadb = os.environ.get("PIPELINE_TEST_MARIADB", "mysql://root@127.0.0.1:3306")
    with scratch(mariadb, "lload", PASSWORD) as run:
        asyncio.run(fill(run.url, opts.pipelines, 0))
        with LiveServer(run.env) as server:
            op = Browserless(server.url)
            assert op.login("admin", PASSWORD).status_code == 303
            cookie = "; ".join(f"{k}={v}" for k, v in op.http.cookies.items())
            for _, path, accept in CASES:  # every case answers 200, and is warm
                r = op.http.get(path, headers={"accept": accept})
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
            print(f"load average before: {os.getloadavg()[0]:.2f}; {opts.pipelines} pipelines, 1 worker, "
                  f"{opts.connections} connections x {opts.duration:g} s per case")
            results = {name: load(server.port, server.proc.pid, path, {"Cookie": cookie, "Accept": accept},
                                  opts.connections, opts.duration) for name, path, accept in CASES}
            floor = results["/healthz"]["rps"] or 1.0
            print(f"{'case':24s} {'req/s':>8s} {'p99 ms':>8s} {'CPU ms/req':>11s} {'÷ healthz':>10s} failed")
            for name, res in results.items():
                print(f"{name:24s} {res['rps']:8.0f} {res['p99']:8.1f} {res['cpu_ms']:11.2f} "
                      f"{res['rps'] / floor:10.3f} {res['failed']}")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            return 1 if any(res["failed"] for res in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
