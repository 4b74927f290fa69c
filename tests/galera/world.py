"""What the cluster test and the cluster benchmark share: a cluster fixture's checks (every node
holds the same rows, every counter equals a recount) and a distributor's caller loop that treats
429 and 503 as a client should (wait, send the same request id again)."""
from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from cluster import GaleraCluster

API = "/api/dist/v1"


@dataclass
class Tally:
    """Every answer a burst got, by status, and the admissions' latencies."""

    statuses: dict[int, int] = field(default_factory=dict)
    admitted: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # 5xx other than 503, and wrong answers

    def saw(self, r: httpx.Response) -> None:
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code >= 500 and r.status_code != 503:
            self.bad.append(f"{r.status_code} {r.request.url.path}: {r.text[:200]}")
        elif r.status_code == 503 and "Retry-After" not in r.headers:
            self.bad.append(f"503 without Retry-After: {r.text[:200]}")

    def share(self, status: int) -> float:
        return self.statuses.get(status, 0) / max(1, sum(self.statuses.values()))


async def send(client: httpx.AsyncClient, tally: Tally, path: str, body: dict, key: str) -> httpx.Response:
    """One request; a refused connection (a server process is never killed here) is a bad answer."""
    r = await client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    tally.saw(r)
    return r


async def call_once(code: str, key: str, clients: list[httpx.AsyncClient], tally: Tally, *,
                    repeat: bool = False, deadline: float | None = None) -> str | None:
    """One logical call: admit (again with the same request id on 429 concurrency and on 503),
    optionally repeated on the other server (must answer the same call), then finish (again on 503).
    → "admitted", "quota" (daily quota reached) or None (deadline passed)."""
    request_id = secrets.token_hex(8)
    first, other = random.sample(clients, 2) if len(clients) > 1 else (clients[0], clients[0])
    while True:
        if deadline is not None and time.monotonic() > deadline:
            return None
        started = time.monotonic()
        r = await send(first, tally, f"{API}/pipelines/{code}/calls", {"request_id": request_id}, key)
        if r.status_code in (200, 201):
            tally.latencies.append(time.monotonic() - started)
            break
        if r.status_code == 429 and r.json()["error"]["limit"].endswith(".daily"):
            if repeat:  # refused on one node: refused on the other too, never replayed as admitted
                again = await send(other, tally, f"{API}/pipelines/{code}/calls", {"request_id": request_id}, key)
                if again.status_code not in (429, 503):
                    tally.bad.append(f"refused on one server, {again.status_code} on the other")
            return "quota"
        if r.status_code not in (429, 503):
            tally.bad.append(f"admit: {r.status_code} {r.text[:200]}")
            return None
        await asyncio.sleep(random.uniform(0.005, 0.03))
    call_id = r.json()["call_id"]
    tally.admitted.append(call_id)
    if repeat:
        again = await until_not_busy(lambda: send(other, tally, f"{API}/pipelines/{code}/calls",
                                                  {"request_id": request_id}, key))
        if again.status_code != 200 or again.json()["call_id"] != call_id:
            tally.bad.append(f"repeat on the other server: {again.status_code} {again.text[:200]}")
    await asyncio.sleep(random.uniform(0.002, 0.02))
    f = await until_not_busy(lambda: send(random.choice(clients), tally, f"{API}/calls/{call_id}/finish",
                                          {"status": "succeeded"}, key))
    if f.status_code != 200 or f.json()["status"] != "succeeded":
        tally.bad.append(f"finish: {f.status_code} {f.text[:200]}")
    return "admitted"


async def until_not_busy(request: Callable[[], Awaitable[httpx.Response]], tries: int = 200) -> httpx.Response:
    """The request, sent again after a short pause while it is answered 503."""
    for _ in range(tries):
        r = await request()
        if r.status_code != 503:
            break
        await asyncio.sleep(random.uniform(0.01, 0.05))
    return r


def _rows(cluster: GaleraCluster, n: int, database: str, sql: str) -> list[tuple]:
    conn = cluster.connect(n, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")  # what this node has applied of the cluster
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def checksums(cluster: GaleraCluster, n: int, database: str) -> dict[str, int]:
    tables = [t for (t,) in _rows(cluster, n, database, "SHOW TABLES")]
    return {t: c for t, c in _rows(cluster, n, database, "CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables))}


def same_rows_everywhere(cluster: GaleraCluster, database: str, timeout: float = 20) -> dict[str, int]:
    """Wait until every node's CHECKSUM TABLE of every table agrees; → the checksums."""
    deadline = time.monotonic() + timeout
    while True:
        sums = [checksums(cluster, m.n, database) for m in cluster.nodes]
        if all(s == sums[0] for s in sums) or time.monotonic() > deadline:
            assert all(s == sums[0] for s in sums), sums
            return sums[0]
        time.sleep(0.3)


def counter_mismatches(cluster: GaleraCluster, n: int, database: str) -> list[str]:
    """Counters of node n that differ from a recount of its usage log (quotas count every call of
    their scope, all of today here; concurrency the running ones)."""
    calls = _rows(cluster, n, database, "SELECT distributor_id, pipeline_id, status FROM pipeline_usage_log")
    wrong = []
    for cid, used in _rows(cluster, n, database, "SELECT id, used FROM quota_counters"):
        scope, _, period = cid.partition("|")
        kind, _, ids = scope.partition(":")
        if kind not in ("dist", "pipe", "link"):
            continue
        recount = sum(1 for d, p, s in calls if {"dist": d, "pipe": p, "link": f"{d}:{p}"}[kind] == ids
                      and (period != "C" or s == "running"))
        if recount != used:
            wrong.append(f"node {n}: {cid} = {used}, recount {recount}")
    return wrong
