"""Benchmark: distributor admit+finish against a floor, on the real server and MariaDB.

Not a test. Makes a fresh MariaDB database, runs the benchmark server on it (`bench/serve.py`:
`pipeline-app serve` on the production app plus the floor route of `bench/asgi.py`), sets up one
offered pipeline through the operator API, then drives with wrk (C, so the load generator takes
little of the 2 cores from the server):
  (a) the real path: POST /pipelines/{code}/calls, then POST /calls/{id}/finish for each call;
  (b) the floor: POST /api/dist/bench/floor/{code}, one indexed SELECT + one INSERT in a
      transaction on raw aiomysql, in the same app, behind the same middleware, same workers.
Rounds alternate floor / real so drift hits both. Prints throughput, p50/p99 latency and the
ratio admissions/s ÷ floor requests/s (target ≥ 0.5). See bench/README.md.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import scratch, servers  # noqa: E402
from live_server import Browserless, create_offer  # noqa: E402

PASSWORD = "bench-Secret-123"


def setup_offer(url: str) -> str:
    """One pipeline with limits set (so every counter kind is exercised), a distributor, a key."""
    op = Browserless(url)
    assert op.login("admin", PASSWORD).status_code == 303
    big = 10**12
    key, _, _ = create_offer(op, "bench", unit_price="0.02",
                             capacity={"daily_quota": big, "monthly_quota": big, "max_concurrency": 100000},
                             distributor={"daily_quota": big, "max_concurrency": 100000}, link={"daily_quota": big})
    return key


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the uvicorn workers), from /proc."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):
            pass
    return total


def children(pid: int) -> list[int]:
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in children(k)]


def db_pid() -> int | None:
    """The local MariaDB server, if it runs on this machine (its CPU is part of every request)."""
    for name in ("mariadbd", "mysqld"):
        r = subprocess.run(["pidof", name], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.split():
            return int(r.stdout.split()[0])
    return None


def busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle/iowait) so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: str, args: list[str], seconds: int, connections: int, threads: int,
        server_pid: int) -> dict:
    db = db_pid()
    cpu, db_cpu, busy = cpu_seconds(server_pid), cpu_seconds(db) if db else 0.0, busy_seconds()
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                          str(HERE / script), url, "--", *args], capture_output=True, text=True).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

    result = dict(re.findall(r"(\w+)=(\d+)", out.split("RESULT", 1)[1])) if "RESULT" in out else {}
    reqs = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    cpu = cpu_seconds(server_pid) - cpu
    db_cpu = (cpu_seconds(db) if db else 0.0) - db_cpu
    busy = busy_seconds() - busy
    n = max(1, int(done.group(1)) if done else 1)
    return {"rps": float(reqs.group(1)) if reqs else 0.0, "p50": latency("50"), "p99": latency("99"),
            "seconds": seconds, "cpu_ms": 1000 * cpu / n, "db_ms": 1000 * db_cpu / n, "busy_ms": 1000 * busy / n,
            **{k: int(v) for k, v in result.items()}, "raw": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured round")
    ap.add_argument("--rounds", type=int, default=2, help="measured rounds of each (alternating)")
    ap.add_argument("--mariadb", default=os.environ.get("PIPELINE_TEST_MARIADB", "mysql://root@127.0.0.1:3306"))
    ap.add_argument("--keep", action="store_true", help="keep the database and the temp folder")
    opts = ap.parse_args()
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        sys.exit("wrk is missing: apt-get install -y wrk")

    with scratch(opts.mariadb, "bench", PASSWORD, keep=opts.keep) as work, \
            servers(work, workers=opts.workers) as [(server, port)]:
        url = f"http://127.0.0.1:{port}"
        key = setup_offer(url)
        print(f"server: {opts.workers} worker(s), wrk: {opts.threads} thread(s) x {opts.connections} connections, "
              f"{opts.rounds} x {opts.duration} s each, database {work.name}", flush=True)

        def real(seconds: int, tag: str) -> dict:
            return wrk(url, "admit_finish.lua", [key, "bench", tag], seconds, opts.connections, opts.threads,
                       server.pid)

        def floor(seconds: int) -> dict:
            return wrk(url, "floor.lua", ["bench"], seconds, opts.connections, opts.threads, server.pid)

        def http_only(seconds: int) -> dict:
            return wrk(url + "/healthz", "get.lua", [], seconds, opts.connections, opts.threads, server.pid)

        floor(3), real(3, "warm")  # warm-up: pools filled, code paths hot
        floors, reals, stacks = [], [], []
        for i in range(opts.rounds):
            stacks.append(http_only(max(2, opts.duration // 3)))
            floors.append(floor(opts.duration))
            reals.append(real(opts.duration, f"r{i}-{secrets.token_hex(3)}"))
            f, r = floors[-1], reals[-1]
            print(f"round {i + 1}: floor {f['rps']:6.0f} req/s (p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms, "
                  f"CPU ms/req: server {f['cpu_ms']:.2f}, db {f['db_ms']:.2f}, machine {f['busy_ms']:.2f})"
                  f" | admit+finish {r['rps']:6.0f} req/s = "
                  f"{r.get('admits', 0) / r['seconds']:5.0f} admissions/s (p50 {r['p50']:.1f} ms, "
                  f"p99 {r['p99']:.1f} ms, CPU ms/req: server {r['cpu_ms']:.2f}, db {r['db_ms']:.2f}, "
                  f"machine {r['busy_ms']:.2f})", flush=True)
            for run in (f, r):
                if run.get("failed") or "RESULT" not in run["raw"]:
                    print(run["raw"], file=sys.stderr)

        floor_rps = statistics.median(f["rps"] for f in floors)
        admits = statistics.median(r.get("admits", 0) / r["seconds"] for r in reals)
        real_rps = statistics.median(r["rps"] for r in reals)
        print()
        print(f"floor (SELECT + INSERT, raw aiomysql):  {floor_rps:8.0f} req/s   "
              f"p50 {statistics.median(f['p50'] for f in floors):.2f} ms   "
              f"p99 {statistics.median(f['p99'] for f in floors):.2f} ms")
        print(f"admit+finish (2 requests per call):     {real_rps:8.0f} req/s   "
              f"p50 {statistics.median(r['p50'] for r in reals):.2f} ms   "
              f"p99 {statistics.median(r['p99'] for r in reals):.2f} ms")
        print(f"admissions/s:                           {admits:8.0f}")
        print(f"ratio admissions/s / floor req/s:       {admits / floor_rps:8.2f}   (target >= 0.50)")
        print(f"ratio HTTP req/s / floor req/s:         {real_rps / floor_rps:8.2f}")
        floor_cpu = statistics.median(f["cpu_ms"] for f in floors)
        call_cpu = 2 * statistics.median(r["cpu_ms"] for r in reals)
        stack_cpu = statistics.median(s["cpu_ms"] for s in stacks)
        print(f"server CPU: floor {floor_cpu:.2f} ms/request, admit+finish {call_cpu:.2f} ms/call "
              f"(CPU-bound ratio {floor_cpu / call_cpu:.2f})")
        print(f"  of which the shared HTTP stack (GET /healthz: uvicorn, middleware, access log): "
              f"{stack_cpu:.2f} ms/request ({statistics.median(s['rps'] for s in stacks):.0f} req/s); "
              f"beyond it: floor {floor_cpu - stack_cpu:.2f} ms, admit+finish {call_cpu - 2 * stack_cpu:.2f} ms")
        errors = sum(r.get("failed", 0) for r in reals) + sum(f.get("failed", 0) for f in floors)
        print(f"errors (non-2xx/429): {errors}; 429s: {sum(r.get('refused', 0) for r in reals)}")
        return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
