"""Benchmark: the distributor API on a local 3-node Galera cluster, four set-ups side by side.

Not a test. Starts a throw-away cluster (tests/galera/cluster.py), one database, three app
servers (`pipeline-app serve`, 1 worker each: A and C on node 1, B on node 2 with node 3 as its
second host) and two offers (pipelines `one` and `two`, each with its own distributor, every limit
kind set, huge). Then wrk (bench/admit_finish.lua: admit, finish each admitted call) for each of:
  (a) one server on a single node          A → node 1, pipeline one
  (b) two servers, two nodes, one pipeline A → node 1 and B → node 2, both pipeline one
  (c) two servers, two nodes, two pipelines A → node 1 pipeline one, B → node 2 pipeline two
  (d) single writer node                    A and C → node 1, both pipeline one
Prints admissions/s, the 503 share of all requests and p99 per set-up, with ratios against (a)
measured in the same run. All of it runs on this machine's cores: cluster nodes, servers and wrk
share them, so the figures compare set-ups; they are not a cluster's capacity.

    py3/bin/python bench/cluster.py [--duration 8] [--connections 16] [--log-bin off|on]
"""
from __future__ import annotations

import argparse
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "galera"), str(HERE.parent / "tests")]

from cluster import GaleraCluster, missing  # noqa: E402
from live_server import Browserless, LiveServer, create_offer, prepare, server_env  # noqa: E402

PASSWORD = "bench-Secret-123"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
BIG = 10**12
LIMITS = dict(capacity={"daily_quota": BIG, "monthly_quota": BIG, "max_concurrency": 100000},
              distributor={"daily_quota": BIG, "max_concurrency": 100000}, link={"daily_quota": BIG})


def wrk(url: str, key: str, code: str, seconds: int, connections: int) -> subprocess.Popen:
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                             str(HERE / "admit_finish.lua"), url, "--", key, code, secrets.token_hex(4)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parsed(out: str) -> dict:
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    result = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out.split("RESULT", 1)[1])} if "RESULT" in out else {}
    done = re.search(r"(\d+) requests in", out)
    return {"p99": float(m.group(1)) * UNITS[m.group(2)] if m else float("nan"),
            "requests": int(done.group(1)) if done else 0, **result, "raw": out}


def measure(runs: list[tuple[str, str, str]], seconds: int, connections: int) -> dict:
    """wrk on every (server url, key, code) at once → totals: admissions/s, 503 share, worst p99."""
    outs = [parsed(p.communicate()[0]) for p in [wrk(u, k, c, seconds, connections) for u, k, c in runs]]
    requests = sum(o["requests"] for o in outs)
    other = sum(o.get("failed", 0) - o.get("busy", 0) for o in outs)
    if other or any("RESULT" not in o["raw"] for o in outs):
        print("\n".join(o["raw"] for o in outs), file=sys.stderr)
    return {"admits": sum(o.get("admits", 0) for o in outs) / seconds,
            "busy": sum(o.get("busy", 0) for o in outs) / max(1, requests),
            "p99": max(o["p99"] for o in outs), "other": other}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=8, help="seconds per set-up")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections per server")
    ap.add_argument("--log-bin", choices=("off", "on"), default="on")
    opts = ap.parse_args()
    if gone := missing() + ([] if shutil.which("wrk") else ["wrk"]):
        sys.exit(f"cannot run: missing {', '.join(gone)}")
    data = Path(tempfile.mkdtemp(prefix="pa-cluster-bench-"))
    try:
        with GaleraCluster(log_bin=opts.log_bin == "on") as cluster:
            conn = cluster.connect(1)
            conn.cursor().execute("CREATE DATABASE bench CHARACTER SET utf8mb4")
            conn.close()
            rbac = f"sqlite:///{data / 'rbac.db'}"
            env1 = server_env(cluster.url(1, "bench"), rbac, data)
            env2 = server_env(cluster.url([2, 3], "bench"), rbac, data)
            prepare(env1, {"admin": (PASSWORD, "pipeline.admin")})
            with LiveServer(env1) as a, LiveServer(env2) as b, LiveServer(env1) as c:
                op = Browserless(a.url)
                assert op.login("admin", PASSWORD).status_code == 303
                one = create_offer(op, "one", unit_price="0.02", **LIMITS).key
                two = create_offer(op, "two", unit_price="0.02", **LIMITS).key
                setups = {
                    "(a) one server, one node": [(a.url, one, "one")],
                    "(b) 2 servers, 2 nodes, 1 pipeline": [(a.url, one, "one"), (b.url, one, "one")],
                    "(c) 2 servers, 2 nodes, 2 pipelines": [(a.url, one, "one"), (b.url, two, "two")],
                    "(d) 2 servers, 1 writer node": [(a.url, one, "one"), (c.url, one, "one")],
                }
                measure([(a.url, one, "one"), (b.url, two, "two"), (c.url, one, "one")], 3, 4)  # warm-up
                print(f"Galera 3 nodes (log_bin {opts.log_bin}), wrk {opts.connections} connections per server, "
                      f"{opts.duration} s per set-up, 1 worker per server", flush=True)
                results = {}
                for name, runs in setups.items():
                    results[name] = measure(runs, opts.duration, opts.connections)
                    r = results[name]
                    print(f"  measured {name}: {r['admits']:.0f} admissions/s", flush=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    base = results["(a) one server, one node"]
    print()
    print(f"{'set-up':38} {'admissions/s':>12} {'× (a)':>7} {'503 share':>10} {'p99 ms':>8} {'× (a)':>7}")
    for name, r in results.items():
        print(f"{name:38} {r['admits']:12.0f} {r['admits'] / base['admits']:7.2f} {100 * r['busy']:9.2f}% "
              f"{r['p99']:8.1f} {r['p99'] / base['p99']:7.2f}")
    other = sum(r["other"] for r in results.values())
    print(f"other errors (not 2xx/429/503): {other}")
    return 0 if other == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
