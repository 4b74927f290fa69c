"""Pipeline-App's list page side by side with SQLAdmin's and Django admin's, on the same table.

    py3/bin/python bench/peers.py                  # 10,000 then 1,000,000 rows
    py3/bin/python bench/peers.py --rows 10000     # the quick run
    py3/bin/python bench/peers.py --rows 10000 --servers ours,django --duration 5 --keep

One throwaway MariaDB database holds the `pipelines` table (Pipeline-App's schema, `db sync`),
filled by multi-row INSERTs through the raw driver. The peers run in their own virtual
environments under /tmp/pipeline-bench-peers (made once, reused; never the project's `py3/`):
SQLAdmin 0.32 under uvicorn (1 worker) and Django admin 5.2 under gunicorn (1 worker, 8
threads), both set up as our list is (bench/peers/: the same 6 columns, 20 rows a page, newest
first, search on code/name/owner, a status filter). Pipeline-App runs as `pipeline-app serve`
with 1 worker. One server runs at a time: it is started on a free port, logged in (its session
cookie goes to wrk as a header), each page kind is checked to show the same 20 rows (the codes
a direct SQL query expects, in order) and the 6 column headers, then wrk (-t2 -c16 -d10s; 60 s
above 10,000 rows) loads it per page kind: first page, a deep page (150 at 10,000 rows; 25,000,
i.e. 500,000 rows deep, at 1,000,000), a search and the filter. It prints req/s and p99 per
server and ours ÷ the best peer. The database is dropped at the end (`--keep` keeps it).
wrk is `wrk` on the PATH, or `--wrk` / `$WRK`.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dist_admit import UNITS, cpu_seconds  # noqa: E402
from harness import BIN, ROOT, Scratch, scratch  # noqa: E402
from html_table import shown  # noqa: E402
from live_server import Browserless, free_port  # noqa: E402

from app.crud.rows import jsonable  # noqa: E402

VENVS = Path("/tmp/pipeline-bench-peers")
PEERS = HERE / "peers"
PASSWORD = "bench-Passw0rd!"
PACKAGES = {
    "sqladmin": ["sqladmin==0.32.*", "itsdangerous", "uvicorn[standard]", "aiomysql", "sqlalchemy[asyncio]"],
    "django": ["django==5.2.*", "gunicorn", "pymysql"],
}
LABELS = ["code", "name", "status", "owner", "published version", "created at"]
SEARCH = "bench-77"
FILTER = "active"
STATUSES = ["draft", "active", "disabled"]
OURS_LIST = "/pipeline_core/pipelines"


def ours_deep(run: Scratch, page: int) -> str:
    """The address of our list's page `page` as its "next" links build it: the page number and the
    `after` cursor of the previous page's last row (the one place to change when paging changes;
    `check_ours_next` fails the run if the links moved on)."""
    if page == 1:
        return OURS_LIST
    conn = run.connect()
    cur = conn.cursor()
    cur.execute("SELECT created_at, id FROM pipelines ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET %s",
                ((page - 1) * 20 - 1,))
    created_at, row_id = cur.fetchone()
    conn.close()
    cursor = base64.urlsafe_b64encode(json.dumps([jsonable(created_at), row_id]).encode()).decode()
    return f"{OURS_LIST}?{urlencode({'page': page, 'after': cursor})}"


def venv(name: str) -> Path:
    """The peer's virtual environment, made (or brought up to PACKAGES) once and then reused."""
    home, spec = VENVS / name, "\n".join(PACKAGES[name])
    marker = home / "bench-packages.txt"
    if marker.exists() and marker.read_text() == spec:
        return home / "bin"
    VENVS.mkdir(exist_ok=True)
    if not (home / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(home)], check=True)
    print(f"installing {name} into {home} ...", flush=True)
    subprocess.run([str(home / "bin" / "pip"), "install", "-q", *PACKAGES[name]], check=True)
    marker.write_text(spec)
    return home / "bin"


# ---- the table -----------------------------------------------------------------------------------

BASE = datetime(2026, 1, 1)


def fill(run: Scratch, upto: int) -> None:
    """Rows `bench-<i>` up to `upto` (those already there stay): distinct created_at (one second
    apart), so "newest first" is one order on every server, and time-ordered ids."""
    conn = run.connect()
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM pipelines")
    have = cur.fetchone()[0]
    conn.autocommit(False)
    sql = ("INSERT INTO pipelines (id, code, name, status, owner, published_version, created_at, updated_at) "
           "VALUES (%s,%s,%s,%s,%s,%s,%s,%s)")
    for start in range(have, upto, 20_000):
        rows = []
        for i in range(start, min(start + 20_000, upto)):
            at = BASE + timedelta(seconds=i)
            rows.append((f"{int(at.timestamp() * 1000):012x}{i:020x}", f"bench-{i}", f"Bench pipeline {i}",
                         STATUSES[i % 3], f"owner{i % 50}", i % 7 or None, at, at))
        cur.executemany(sql, rows)  # PyMySQL sends these as multi-row INSERTs
        conn.commit()
    conn.autocommit(True)
    cur.execute("ANALYZE TABLE pipelines")
    cur.fetchall()
    conn.close()


def expected(run: Scratch, kind: str, deep_page: int) -> list[str]:
    """The codes a page kind must show, by a direct query of the same order and condition."""
    where, args, offset = "", (), 0
    if kind == "search":
        where, args = "WHERE code LIKE %s OR name LIKE %s OR owner LIKE %s", (f"%{SEARCH}%",) * 3
    elif kind == "filter":
        where, args = "WHERE status = %s", (FILTER,)
    elif kind == "deep":
        offset = (deep_page - 1) * 20
    conn = run.connect()
    cur = conn.cursor()
    cur.execute(f"SELECT code FROM pipelines {where} ORDER BY created_at DESC, id DESC LIMIT 20 OFFSET {offset}",
                args)
    codes = [r[0] for r in cur.fetchall()]
    conn.close()
    return codes


# ---- the servers ---------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    probe: str  # a path that answers once the server is up
    login: Callable[[httpx.Client], None]
    base: str  # the list's path
    deep: Callable[[int], str]  # page number → its path
    search: str  # the query parameter of a search
    filter: str  # the query parameter of the status filter

    def paths(self, deep: int) -> dict[str, str]:
        """Page kind → path: the first page, page `deep`, the search, the filter."""
        return {"first": self.base, "deep": self.deep(deep), "search": f"{self.base}?{self.search}={SEARCH}",
                "filter": f"{self.base}?{self.filter}={FILTER}"}


def login_ours(http: httpx.Client) -> None:
    op = Browserless(str(http.base_url))
    with op.http:
        assert op.login("admin", PASSWORD).status_code in (302, 303), "Pipeline-App login failed"
        http.cookies.update(op.http.cookies)
    http.cookies.set("lang", "en")  # English headers, as the peers show


def login_sqladmin(http: httpx.Client) -> None:
    r = http.post("/admin/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 302 and "session" in http.cookies, f"SQLAdmin login failed: {r.status_code}"


def login_django(http: httpx.Client) -> None:
    page = http.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    r = http.post("/admin/login/", data={"username": "admin", "password": PASSWORD,
                                         "csrfmiddlewaretoken": token, "next": "/admin/"})
    assert r.status_code == 302 and "sessionid" in http.cookies, f"Django login failed: {r.status_code}"


def servers(run: Scratch, names: list[str]) -> list[Server]:
    """The three servers on `run`'s database, the peers' environments made first."""
    out = []
    db = run.url + "?charset=utf8mb4"
    peer_env = {**os.environ, "PEER_DB": db, "PEER_PASSWORD": PASSWORD}
    if "ours" in names:
        out.append(Server("ours", [str(BIN / "pipeline-app"), "serve", "--workers", "1", "--port"], run.env, ROOT,
                          "/healthz", login_ours, OURS_LIST, lambda n: ours_deep(run, n), "q", "status"))
    if "sqladmin" in names:
        bin_ = venv("sqladmin")
        base = "/admin/pipeline/list"
        out.append(Server("sqladmin", [str(bin_ / "uvicorn"), "sqladmin_app:app", "--app-dir", str(PEERS),
                                       "--workers", "1", "--no-access-log", "--log-level", "warning", "--port"],
                          {**peer_env, "PEER_DB": db.replace("mysql://", "mysql+aiomysql://", 1)}, PEERS,
                          "/admin/login", login_sqladmin, base, lambda n: f"/admin/pipeline/list?page={n}",
                          "search", "status"))
    if "django" in names:
        bin_ = venv("django")
        env = {**peer_env, "DJANGO_SETTINGS_MODULE": "django_site.settings",
               "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
        for step in (["migrate", "--noinput", "-v0"],
                     ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"]):
            subprocess.run([str(bin_ / "python"), "-m", "django", *step], env=env, cwd=PEERS, check=True)
        base = "/admin/django_site/pipeline/"
        out.append(Server("django", [str(bin_ / "gunicorn"), "--workers", "1", "--threads", "8",
                                     "django_site.wsgi:application", "--bind"], env, PEERS,
                          "/admin/login/", login_django, base, lambda n: f"/admin/django_site/pipeline/?p={n}",
                          "q", "status__exact"))
    return sorted(out, key=lambda s: names.index(s.name))  # measured in the order asked for


def start(server: Server, log: Path) -> tuple[subprocess.Popen, str]:
    """The server on a free port, once its probe path answers."""
    port = free_port()
    where = f"127.0.0.1:{port}" if server.name == "django" else str(port)
    with open(log, "w") as out:
        proc = subprocess.Popen([*server.command, where], env=server.env, cwd=server.cwd, stdout=out, stderr=out)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{server.name} exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url + server.probe, timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(proc)
    sys.exit(f"{server.name} did not start; see {log}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own pid (it drains), a kill if it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- checking a page -----------------------------------------------------------------------------

def check(name: str, kind: str, html: str, want: list[str]) -> None:
    """Fail loudly unless the page shows the expected 20 rows and the 6 columns."""
    head, codes = shown(html)
    labels = [re.sub(r"[^a-z ]", "", h.lower()).strip() for h in head]
    if len(labels) != 6 or any(want_label not in got for want_label, got in zip(LABELS, labels, strict=False)):
        sys.exit(f"{name} {kind}: columns {head}, not {LABELS}")
    if len(want) != 20 or codes != want:
        sys.exit(f"{name} {kind}: rows {codes}, expected {want}")


def check_ours_next(run: Scratch, http: httpx.Client) -> None:
    """Our first page links its second as `ours_deep(2)` does, or the deep page measures the wrong URL."""
    if f'href="{html.escape(ours_deep(run, 2))}" rel="next"' not in http.get(OURS_LIST).text:
        sys.exit("our list's next link is no longer ours_deep(2): update ours_deep()")


# ---- load ----------------------------------------------------------------------------------------

def wrk(url: str, cookie: str, seconds: int, opts: argparse.Namespace, pid: int) -> dict:
    """wrk on one address → req/s, p99 ms, the server's CPU ms per request (process `pid` and its
    children: what the shared machine's other load moves least), non-2xx answers, socket errors."""
    cpu = cpu_seconds(pid)
    out = subprocess.run([opts.wrk, f"-t{opts.threads}", f"-c{opts.connections}", f"-d{seconds}s", "--latency",
                          "--timeout", "120s", "-s", str(HERE / "get.lua"), "-H", f"Cookie: {cookie}", url],
                         capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    failed = re.search(r"failed=(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    done = re.search(r"(\d+) requests in", out)
    requests = int(done.group(1)) if done else 0
    return {"cpu_ms": 1000 * (cpu_seconds(pid) - cpu) / requests if requests else float("nan"),
            "rps": float(rps.group(1)) if rps else 0.0,
            "p99": float(p99.group(1)) * {**UNITS, "m": 60_000.0}[p99.group(2)] if p99 else float("nan"),
            "failed": int(failed.group(1)) if failed else -1, "errors": errors.group(1) if errors else "",
            "requests": requests, "raw": out}


KINDS = ["first", "deep", "search", "filter"]


def deep_page(rows: int) -> int:
    """Page 150 of 10,000 rows (the issue's); half-way down a bigger table (25,000 of 1,000,000)."""
    return 150 if rows <= 10_000 else rows // 2 // 20


def seconds_of(rows: int, opts: argparse.Namespace) -> int:
    """wrk's run per page kind: longer on big tables, so that its p99 has some dozens of requests behind it."""
    return opts.duration if rows <= 10_000 else opts.big_duration  # a page no request finished: 0 req/s


def measure(run: Scratch, server: Server, rows: int, opts: argparse.Namespace) -> dict[str, dict]:
    """One server, started, checked and loaded per page kind, then stopped."""
    deep = deep_page(rows)
    proc, url = start(server, run.data / f"{server.name}-{rows}.log")
    try:
        with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as http:
            server.login(http)
            if server.name == "ours":
                check_ours_next(run, http)
            paths = server.paths(deep)
            for kind in KINDS:
                page = http.get(paths[kind])
                if page.status_code != 200:
                    sys.exit(f"{server.name} {kind}: HTTP {page.status_code} for {paths[kind]}")
                check(server.name, kind, page.text, expected(run, kind, deep))
            cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies.jar)
        seconds = seconds_of(rows, opts)
        if rows <= 10_000:
            wrk(url + paths["first"], cookie, 2, opts, proc.pid)  # warm-up (on a big table the checks did that)
        results = {}
        for kind in KINDS:
            r = wrk(url + paths[kind], cookie, seconds, opts, proc.pid)
            if "RESULT" not in r["raw"]:
                sys.exit(f"{server.name} {kind}: wrk failed\n{r['raw']}")
            results[kind] = r
            failed = f", {r['failed']} NOT 2xx: see {server.name}-{rows}.log" if r["failed"] else ""
            print(f"  {server.name:9s} {kind:7s} {r['rps']:8.1f} req/s  p99 {r['p99']:8.1f} ms  server CPU "
                  f"{r['cpu_ms']:6.2f} ms/request  ({r['requests']} requests{failed})"
                  f"{'  socket errors: ' + r['errors'] if r['errors'] else ''}", flush=True)
        return results
    finally:
        stop(proc)


def report(rows: int, results: dict[str, dict[str, dict]], opts: argparse.Namespace) -> None:
    """The table of one size: req/s, p99 and server CPU per request per server and page kind; ours ÷
    the best peer's req/s (above 1: ours serves more) and CPU (below 1: ours spends less)."""
    deep = deep_page(rows)
    names = list(results)
    peers = [n for n in names if n != "ours"]
    kinds = {"first": "first page", "deep": f"page {deep:,}", "search": f"search '{SEARCH}'",
             "filter": f"filter status={FILTER}"}
    print(f"\n{rows:,} rows, wrk -t{opts.threads} -c{opts.connections} -d{seconds_of(rows, opts)}s, "
          f"load average {os.getloadavg()[0]:.1f}")
    both = "ours" in names and peers
    if any(results[n][k]["failed"] for n in names for k in KINDS):
        print("! : some answers were not 2xx (counted by wrk as requests all the same; see the lines above)")
    print(f"{'page':22s}" + "".join(f"{n + ' req/s':>15s}{'p99 ms':>9s}{'CPU ms':>8s} " for n in names)
          + ("   ours ÷ best: req/s  CPU" if both else ""))
    for kind, title in kinds.items():
        r = {n: results[n][kind] for n in names}
        line = f"{title:22s}" + "".join(f"{r[n]['rps']:15.1f}{r[n]['p99']:9.1f}{r[n]['cpu_ms']:8.2f}"
                                        + ("!" if r[n]["failed"] else " ") for n in names)
        if both:
            fastest = max(r[n]["rps"] for n in peers)
            cheapest = min((r[n]["cpu_ms"] for n in peers if r[n]["requests"]), default=float("nan"))
            line += f"{r['ours']['rps'] / fastest:18.2f}" if fastest else f"{'-':>18s}"
            line += f"{r['ours']['cpu_ms'] / cheapest:6.2f}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="10000,1000000", help="table sizes, comma-separated, ascending")
    ap.add_argument("--servers", default="ours,sqladmin,django", help="which, in the order they are measured")
    ap.add_argument("--duration", type=int, default=10, help="seconds of wrk per page kind, up to 10,000 rows")
    ap.add_argument("--big-duration", type=int, default=60,
                    help="the same above 10,000 rows, where one page can take seconds under 16 connections")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mariadb", default=os.environ.get("PIPELINE_TEST_MARIADB", "mysql://root@127.0.0.1:3306"))
    ap.add_argument("--wrk", default=os.environ.get("WRK", "wrk"), help="the wrk command (default: $WRK or wrk)")
    ap.add_argument("--keep", action="store_true", help="keep the database and the folder (logs)")
    opts = ap.parse_args()
    sizes = sorted(int(n.replace("_", "")) for n in opts.rows.split(","))
    names = [n.strip() for n in opts.servers.split(",")]
    if not shutil.which(opts.wrk):
        sys.exit("wrk is missing: apt-get install -y wrk")
    with scratch(opts.mariadb, "peers", PASSWORD, keep=opts.keep) as run:
        lineup = servers(run, names)
        for rows in sizes:
            t = time.perf_counter()
            fill(run, rows)
            print(f"\n{rows:,} rows in {run.name} (filled in {time.perf_counter() - t:.0f} s), "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
            results = {s.name: measure(run, s, rows, opts) for s in lineup}
            report(rows, results, opts)

if __name__ == "__main__":
    main()
