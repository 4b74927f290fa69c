"""Soak: distributor admit+finish for minutes on two server processes sharing one MariaDB.

Not a test. Makes a fresh MariaDB database, runs two benchmark servers on it (`bench/serve.py`:
`pipeline-app serve --workers 1` of the production app; the floor route it adds stays unused),
two "machines": each its own pools, key cache and lease sweeper. It sets up through the
operator API one distributor offered two pipelines:
  * `soak`: generous quotas (admissions always succeed);
  * `tight`: a small daily quota and a concurrency limit, so the 429 paths run too (first
    `pipeline.concurrency`, then `pipeline.daily` once the day's quota is spent).
Load generators (separate processes, loopback only, a fixed number of keep-alive connections,
each stopping by itself after `--minutes` or `--max-requests`, whichever comes first) run
admit → finish cycles; connections alternate between the two servers. Every 10 s the RSS of
each server process (and of any child workers) is sampled from /proc.

At the end it prints requests, admissions, 429s by limit, unexpected answers, throughput,
p50/p99 latency, RSS per server at start / after warm-up / middle / end, and recounts every
quota counter against pipeline_usage_log. Exit status 1 if any request got an unexpected
answer (anything but 201/200 and 429), a counter differs from its recount or a concurrency
counter is not 0 after all finishes, or a server's RSS grew more than --max-growth (20 %)
between the end of warm-up and the end. See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import scratch, servers  # noqa: E402

PASSWORD = "soak-Secret-123"
API = "/api/dist/v1"
TIGHT_DAILY = 500
TIGHT_CONCURRENCY = 4


# ---- the load generator (runs as its own process: `soak.py --loadgen ...`) -----------------------------

class Conn:
    """A minimal HTTP/1.1 keep-alive client: little CPU per request, so the 2 cores go to the servers."""

    def __init__(self, port: int, key: str):
        self.port, self.auth = port, f"Authorization: Bearer {key}\r\n".encode()
        self.reader = self.writer = None

    async def post(self, path: str, payload: dict) -> tuple[int, dict]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        body = json.dumps(payload).encode()
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n%s\r\n%s" % (path.encode(), len(body), self.auth, body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if not length:
            raise RuntimeError(f"no Content-Length: {head[:200]!r}")
        data = await self.reader.readexactly(int(length.group(1)))
        if re.search(rb"(?i)\r\nconnection: *close", head):
            self.close()
        return status, json.loads(data) if data else {}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def loadgen(ports: list[int], key: str, connections: int, seconds: float, max_requests: int,
                  tight_share: float) -> dict:
    out = {"requests": 0, "admitted": 0, "finished": 0, "refused": {}, "unexpected": {}, "admit_ms": [],
           "finish_ms": []}
    deadline = time.monotonic() + seconds

    def bad(kind: str, detail: str) -> None:
        out["unexpected"][kind] = out["unexpected"].get(kind, 0) + 1
        if out["unexpected"][kind] <= 3:
            print(f"loadgen: unexpected {kind}: {detail[:300]}", file=sys.stderr)

    async def worker(i: int) -> None:
        conn = Conn(ports[i % len(ports)], key)
        rng = random.Random(i)
        while time.monotonic() < deadline and out["requests"] < max_requests:
            code = "tight" if rng.random() < tight_share else "soak"
            out["requests"] += 1
            t0 = time.perf_counter()
            try:
                status, body = await conn.post(f"{API}/pipelines/{code}/calls",
                                               {"request_id": secrets.token_hex(12), "units": rng.randint(1, 3)})
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none is fatal
                bad("transport", repr(exc))
                conn.close()
                continue
            out["admit_ms"].append((time.perf_counter() - t0) * 1000)
            if status == 429:
                limit = body.get("error", {}).get("limit", "?")
                key_ = f"{code}:{limit}"
                out["refused"][key_] = out["refused"].get(key_, 0) + 1
                if limit.endswith("concurrency"):
                    await asyncio.sleep(0.005)
                continue
            if status != 201 or "call_id" not in body:
                bad(f"admit {status}", json.dumps(body))
                continue
            out["admitted"] += 1
            final = "failed" if rng.random() < 0.1 else "succeeded"
            out["requests"] += 1
            t0 = time.perf_counter()
            try:
                status, done = await conn.post(f"{API}/calls/{body['call_id']}/finish", {"status": final})
            except Exception as exc:  # noqa: BLE001
                bad("transport", repr(exc))
                conn.close()
                continue
            out["finish_ms"].append((time.perf_counter() - t0) * 1000)
            if status != 200 or done.get("status") != final:
                bad(f"finish {status}", json.dumps(done))
                continue
            out["finished"] += 1
        conn.close()

    await asyncio.gather(*[worker(i) for i in range(connections)])
    return out


# ---- the orchestrator --------------------------------------------------------------------------------

def kill_running(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


def setup_offer(port: int) -> tuple[str, dict[str, str], str]:
    """Through the operator API. Returns (key, {code: pipeline id}, distributor id)."""
    import httpx

    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    http.get("/login")
    r = http.post("/login", data={"username": "admin", "password": PASSWORD,
                                  "_csrf_token": http.cookies.get("csrftoken", "")})
    assert r.status_code == 303, r.text

    def make(path: str, body: dict) -> dict:
        r = http.post(path, json=body, headers={"x-csrftoken": http.cookies.get("csrftoken", "")})
        assert r.status_code in (200, 201), (path, r.status_code, r.text)
        return r.json()

    big = 10**12
    ids = {}
    for code, capacity in (("soak", {"daily_quota": big, "monthly_quota": big, "max_concurrency": 100000}),
                           ("tight", {"daily_quota": TIGHT_DAILY, "max_concurrency": TIGHT_CONCURRENCY})):
        p = make("/api/pipeline_core/pipelines", {"code": code, "name": code.title(), "status": "active"})
        make("/api/pipeline_core/pipeline_steps", {"pipeline_id": p["id"], "seq": 1, "name": "s1",
                                                   "step_type": "transform"})
        make("/api/pipeline_ops/pipeline_pricing", {"pipeline_id": p["id"], "billing_unit": "call",
                                                    "price_mode": "unit", "unit_price": "0.02",
                                                    "effective_from": "2020-01-01 00:00:00"})
        make(f"/api/pipeline_core/pipelines/{p['id']}/publish", {})
        make("/api/pipeline_ops/pipeline_capacity", {"pipeline_id": p["id"], "status": "active", **capacity})
        ids[code] = p["id"]
    d = make("/api/pipeline_dist/distributors", {"name": "soak", "status": "active", "daily_quota": big,
                                                 "monthly_quota": big, "max_concurrency": 100000})
    for pid in ids.values():
        make("/api/pipeline_dist/distributor_pipeline", {"distributor_id": d["id"], "pipeline_id": pid,
                                                         "enabled": "1", "daily_quota": big, "monthly_quota": big})
    key = make(f"/api/pipeline_dist/distributors/{d['id']}/generate_key", {})["api_key"]
    return key, ids, d["id"]


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` and every descendant (uvicorn's workers, when --workers > 1)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def seconds_to_local_midnight(tz_name: str) -> float:
    from zoneinfo import ZoneInfo

    local = datetime.now(UTC).astimezone(ZoneInfo(tz_name))
    nxt = datetime.combine(local.date() + timedelta(days=1), dtime(), tzinfo=local.tzinfo)
    return (nxt - local).total_seconds()


def recount(conn, pipelines: dict[str, str], distributor_id: str) -> list[str]:
    """Every counter against the usage log (all rows are of this day and month: the run never
    straddles a local midnight). Quota counters count calls; concurrency counters must be 0."""
    problems = []
    with conn.cursor() as cur:
        cur.execute("SELECT id, used FROM quota_counters")
        counters = dict(cur.fetchall())
        scopes = {f"dist:{distributor_id}": ("distributor_id = %s", (distributor_id,))}
        for pid in pipelines.values():
            scopes[f"pipe:{pid}"] = ("pipeline_id = %s", (pid,))
            scopes[f"link:{distributor_id}:{pid}"] = ("distributor_id = %s AND pipeline_id = %s", (distributor_id, pid))
        names = {v: k for k, v in pipelines.items()}
        print("\ncounters (used vs recount of pipeline_usage_log):")
        for cid, used in sorted(counters.items()):
            scope, _, period = cid.partition("|")
            if scope not in scopes:
                problems.append(f"unknown counter {cid}")
                continue
            where, args = scopes[scope]
            if period == "C":
                where += " AND status = 'running'"
            cur.execute(f"SELECT COUNT(*) FROM pipeline_usage_log WHERE {where}", args)
            n = cur.fetchone()[0]
            label = re.sub(r"[0-9a-f]{32}", lambda m: names.get(m.group(0), "dist"), cid)
            ok = used == n and (period != "C" or used == 0)
            print(f"  {label:42} used {used:>8}  recount {n:>8}  {'ok' if ok else 'MISMATCH'}")
            if not ok:
                problems.append(f"{cid}: used {used}, recount {n}")
        cur.execute("SELECT status, COUNT(*) FROM pipeline_usage_log GROUP BY status")
        by_status = dict(cur.fetchall())
        print(f"usage rows by status: {by_status}")
        if by_status.get("running"):
            problems.append(f"{by_status['running']} calls still running after every finish")
        cur.execute("SELECT COUNT(*) FROM pipeline_usage_log WHERE pipeline_id = %s", (pipelines["tight"],))
        tight = cur.fetchone()[0]
        if tight > TIGHT_DAILY:
            problems.append(f"tight pipeline admitted {tight}, over its daily quota {TIGHT_DAILY}")
        print(f"tight pipeline: {tight} calls admitted, daily quota {TIGHT_DAILY}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--connections", type=int, default=64, help="keep-alive connections in all")
    ap.add_argument("--loadgens", type=int, default=2, help="load generator processes")
    ap.add_argument("--max-requests", type=int, default=5_000_000, help="per load generator")
    ap.add_argument("--tight-share", type=float, default=0.1, help="share of calls to the tight pipeline")
    ap.add_argument("--warmup", type=float, default=30, help="seconds before the RSS baseline")
    ap.add_argument("--max-growth", type=float, default=0.20, help="allowed RSS growth after warm-up")
    ap.add_argument("--mariadb", default=os.environ.get("PIPELINE_TEST_MARIADB", "mysql://root@127.0.0.1:3306"))
    ap.add_argument("--keep", action="store_true", help="keep the database and the temp folder")
    # internal: one load generator process
    ap.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ports", default="", help=argparse.SUPPRESS)
    ap.add_argument("--key", default="", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.loadgen:
        result = asyncio.run(loadgen([int(p) for p in args.ports.split(",")], os.environ["SOAK_KEY"],
                                     args.connections, args.seconds, args.max_requests, args.tight_share))
        Path(args.out).write_text(json.dumps(result))
        return 0

    from app.core.config import load_settings

    seconds = args.minutes * 60
    to_midnight = seconds_to_local_midnight(load_settings().business_timezone)
    if to_midnight < seconds + 120:  # daily counters must not roll over mid-run
        print(f"waiting {to_midnight + 2:.0f} s for the local midnight to pass")
        time.sleep(to_midnight + 2)

    loadgens: list[subprocess.Popen] = []
    failures: list[str] = []
    with ExitStack() as stack:  # at exit: load generators killed, servers stopped, database dropped
        work = stack.enter_context(scratch(args.mariadb, "soak", PASSWORD, keep=args.keep))
        running = stack.enter_context(servers(work, count=2))
        stack.callback(kill_running, loadgens)
        data = work.data
        key, pipelines, distributor_id = setup_offer(running[0][1])
        print(f"database {work.name}; servers on ports {[p for _, p in running]} (2 x `serve --workers 1`); "
              f"{args.loadgens} load generators x {args.connections // args.loadgens} connections for "
              f"{args.minutes:g} min; tight pipeline: daily {TIGHT_DAILY}, concurrency {TIGHT_CONCURRENCY}, "
              f"{args.tight_share:.0%} of calls")

        samples: list[tuple[float, list[int]]] = [(0.0, [rss_kb(p.pid) for p, _ in running])]
        ports = ",".join(str(p) for _, p in running)
        lg_env = {**os.environ, "SOAK_KEY": key}
        outs = [data / f"loadgen-{i}.json" for i in range(args.loadgens)]
        started = time.monotonic()
        for i in range(args.loadgens):
            loadgens.append(subprocess.Popen(
                [sys.executable, __file__, "--loadgen", "--ports", ports, "--seconds", str(seconds),
                 "--connections", str(args.connections // args.loadgens), "--max-requests", str(args.max_requests),
                 "--tight-share", str(args.tight_share), "--out", str(outs[i])], env=lg_env))
        next_sample = started + 10
        while any(lg.poll() is None for lg in loadgens):
            if time.monotonic() > started + seconds + 120:
                kill_running(loadgens)
                failures.append("a load generator overran its time and was killed")
                break
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - started, [rss_kb(p.pid) for p, _ in running]))
                next_sample += 10
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        samples.append((elapsed, [rss_kb(p.pid) for p, _ in running]))
        for i, lg in enumerate(loadgens):
            if lg.returncode != 0:
                failures.append(f"load generator {i} exited {lg.returncode}")

        results = [json.loads(o.read_text()) for o in outs if o.exists()]
        total = {"requests": 0, "admitted": 0, "finished": 0}
        refused: dict[str, int] = {}
        unexpected: dict[str, int] = {}
        admit_ms: list[float] = []
        finish_ms: list[float] = []
        for r in results:
            for k in total:
                total[k] += r[k]
            for k, v in r["refused"].items():
                refused[k] = refused.get(k, 0) + v
            for k, v in r["unexpected"].items():
                unexpected[k] = unexpected.get(k, 0) + v
            admit_ms += r["admit_ms"]
            finish_ms += r["finish_ms"]
        errors = sum(unexpected.values())
        print(f"\nduration {elapsed:.1f} s")
        print(f"requests {total['requests']}  ({total['requests'] / elapsed:.0f}/s)")
        print(f"admissions {total['admitted']}  ({total['admitted'] / elapsed:.0f}/s), finished {total['finished']}")
        print(f"429s by limit: {dict(sorted(refused.items())) or 'none'}  ({sum(refused.values())} in all)")
        print(f"unexpected answers: {unexpected or 'none'}  (error rate {errors / max(1, total['requests']):.4%})")
        every = admit_ms + finish_ms
        print("latency ms      p50     p99     max")
        for label, xs in (("all", every), ("admit", admit_ms), ("finish", finish_ms)):
            print(f"  {label:8} {pct(xs, .5):7.1f} {pct(xs, .99):7.1f} {max(xs) if xs else float('nan'):7.1f}")
        if errors:
            failures.append(f"{errors} unexpected answers")
        if not refused.get("tight:pipeline.daily") or not refused.get("tight:pipeline.concurrency"):
            failures.append("the tight pipeline's 429 paths were not both exercised")

        # memory: start, end of warm-up, middle, end
        warm = next((s for s in samples if s[0] >= args.warmup), samples[-1])
        middle = min(samples, key=lambda s: abs(s[0] - elapsed / 2))
        print(f"\nRSS MB per server    start   warm-up(t={warm[0]:.0f}s)  middle(t={middle[0]:.0f}s)  "
              f"end(t={elapsed:.0f}s)  growth after warm-up")
        for i, (_, port) in enumerate(running):
            growth = samples[-1][1][i] / warm[1][i] - 1
            print(f"  server {port:<6} {samples[0][1][i] / 1024:9.1f} {warm[1][i] / 1024:14.1f} "
                  f"{middle[1][i] / 1024:15.1f} {samples[-1][1][i] / 1024:11.1f}   {growth:+.1%}")
            if growth > args.max_growth:
                failures.append(f"server {port} RSS grew {growth:.1%} after warm-up")
        print("  samples (s: MB per server): " + ", ".join(
            f"{t:.0f}: " + "/".join(f"{kb / 1024:.0f}" for kb in kbs) for t, kbs in samples))

        for proc, port in running:
            if proc.poll() is not None:
                failures.append(f"server {port} died (exit {proc.returncode})")
            text = (data / f"server-{port}.log").read_text()
            if "Traceback" in text:
                failures.append(f"server {port} logged a traceback (see {data / f'server-{port}.log'})")

        # the recount, after every finish (the lease sweepers have nothing to do: all calls closed)
        db = work.connect()
        try:
            failures += recount(db, pipelines, distributor_id)
        finally:
            db.close()

    print("\nRESULT: " + ("FAIL\n  " + "\n  ".join(failures) if failures else "PASS"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
