"""What test files share besides fixtures: one logged-in client (in-process or over real HTTP), one
builder of a priced, published, offered pipeline with a key, the route walk, a movable clock and
database reads.

It sits at tests/ beside conftest.py: pytest puts that folder on sys.path, so `from helpers
import …` works from every test folder below it.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
ECOSYSTEM = Path(__file__).resolve().parent / "fixtures" / "ecosystem"
ADMIN_PASSWORD = "admin-Secret-123"
_CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's form carries (fails the test when there is none)."""
    m = _CSRF_FIELD.search(html)
    assert m, "the form carries no CSRF token"
    return m.group(1)


# ---- one logged-in client ------------------------------------------------------------------------

class _Browser:
    """What a browser adds to its requests: the CSRF token of the cookie, as a header on JSON writes
    and as a form field on form posts. The subclasses only do the I/O (async in-process, sync HTTP)."""

    http: httpx.Client | httpx.AsyncClient

    @property
    def csrf(self) -> str:
        return self.http.cookies.get("csrftoken") or ""

    def _login_form(self, page: str, username: str, password: str, next_: str | None) -> dict[str, str]:
        m = _CSRF_FIELD.search(page)
        data = {"username": username, "password": password, "_csrf_token": m.group(1) if m else self.csrf}
        return data if next_ is None else {**data, "next": next_}

    def _headers(self, method: str, kwargs: dict) -> dict:
        headers = dict(kwargs.pop("headers", {}))
        if method.upper() not in ("GET", "HEAD"):
            headers.setdefault("x-csrftoken", self.csrf)
        return headers

    def _form(self, data: dict) -> dict:
        return {**data, "_csrf_token": self.csrf}


class Operator(_Browser):
    """A browser-like client of the in-process app (Litestar's AsyncTestClient): keeps cookies,
    logs in through the login form and sends the CSRF token on writes."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = self.http = client

    async def login(self, username: str, password: str, next_: str | None = None) -> httpx.Response:
        page = await self.client.get("/login")
        return await self.client.post("/login", data=self._login_form(page.text, username, password, next_),
                                      follow_redirects=False)

    async def logout(self) -> httpx.Response:
        return await self.form("/logout", {})

    async def me(self) -> httpx.Response:
        """`/me` as a script asks for it (JSON): 200 with the user, 401 when logged out."""
        return await self.client.get("/me", headers={"accept": "application/json"})

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers(method, kwargs)
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def form(self, path: str, data: dict, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, data=self._form(data), follow_redirects=False, **kwargs)


class Browserless(_Browser):
    """The same client over real HTTP to a server process (sync httpx); a form post first loads the
    form page for its token, as a browser does."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)

    def login(self, username: str, password: str, next_: str | None = None) -> httpx.Response:
        page = self.http.get("/login")
        return self.http.post("/login", data=self._login_form(page.text, username, password, next_))

    def form_token(self, path: str) -> str:
        page = self.http.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:500])
        return csrf_of(page.text)

    def submit(self, path: str, data: dict) -> httpx.Response:
        return self.http.post(path, data={**data, "_csrf_token": self.form_token(path)})

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers(method, kwargs)
        return self.http.request(method, path, headers=headers, **kwargs)


# ---- one offer builder ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Offer:
    """What a distributor needs to call: its key, and the ids of the rows behind it. Unpacks as
    (key, pipeline id, distributor id)."""

    key: str
    pipeline_id: str
    distributor_id: str
    link_id: str
    capacity_id: str | None

    def __iter__(self) -> Iterator[str]:
        return iter((self.key, self.pipeline_id, self.distributor_id))


_Requests = Generator[tuple[str, dict], dict, Offer]


def _offer_requests(code: str, *, unit_price: str = "0.5", capacity: dict | None = None,
                    distributor: dict | None = None, link: dict | None = None, publish: bool = True) -> _Requests:
    """The operator API calls an offer takes, in order; each yields (path, body) and receives the
    created row. One plan for both clients: `create_offer` (sync) and `create_offer_async` run it."""
    p = yield "/api/pipeline_core/pipelines", {"code": code, "name": code.title(), "status": "active"}
    yield "/api/pipeline_core/pipeline_steps", {"pipeline_id": p["id"], "seq": 1, "name": "s1",
                                                "step_type": "transform"}
    yield "/api/pipeline_ops/pipeline_pricing", {"pipeline_id": p["id"], "billing_unit": "call", "price_mode": "unit",
                                                 "unit_price": unit_price, "effective_from": "2020-01-01 00:00:00"}
    if publish:
        yield f"/api/pipeline_core/pipelines/{p['id']}/publish", {}
    capacity_id = None
    if capacity is not None:
        capacity_id = (yield "/api/pipeline_ops/pipeline_capacity",
                       {"pipeline_id": p["id"], "status": "active", **capacity})["id"]
    d = yield "/api/pipeline_dist/distributors", {"name": f"{code}-dist", "status": "active", **(distributor or {})}
    ln = yield "/api/pipeline_dist/distributor_pipeline", {"distributor_id": d["id"], "pipeline_id": p["id"],
                                                           "enabled": "1", **(link or {})}
    key = (yield f"/api/pipeline_dist/distributors/{d['id']}/generate_key", {})["api_key"]
    return Offer(key, p["id"], d["id"], ln["id"], capacity_id)


def _created(path: str, r: httpx.Response) -> dict:
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


def create_offer(op: Browserless, code: str, **options: Any) -> Offer:
    """What an operator does before a distributor can call, through the operator API of a real
    server: a published, priced pipeline (optionally with a capacity row), a distributor, the link,
    a key. Options: unit_price, capacity, distributor and link (extra fields), publish."""
    plan = _offer_requests(code, **options)
    try:
        path, body = next(plan)
        while True:
            path, body = plan.send(_created(path, op.api("POST", path, json=body)))
    except StopIteration as done:
        return done.value


async def create_offer_async(op: Operator, code: str, **options: Any) -> Offer:
    """`create_offer` through the in-process app."""
    plan = _offer_requests(code, **options)
    try:
        path, body = next(plan)
        while True:
            path, body = plan.send(_created(path, await op.api("POST", path, json=body)))
    except StopIteration as done:
        return done.value


# ---- the route walk ------------------------------------------------------------------------------

SKIP_METHODS = {"HEAD", "OPTIONS"}


def routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route the Litestar app serves."""
    return [(method, route.path) for route in app.routes
            for method in sorted(getattr(route, "methods", set()) - SKIP_METHODS)]


def concrete(path: str, ids: dict[str, str]) -> str:
    """A request path for a route template: an existing row id where the route wants one."""
    table = path.split("/")[3] if path.startswith("/api/") else (path.split("/")[2] if path.count("/") > 1 else "")
    path = path.replace("{id:str}", ids.get(table, "00000000000000000000000000000000"))
    path = path.replace("{field:str}", "pipeline_id").replace("{code:str}", "zh")
    path = re.sub(r"\{[^}]+:path\}", "app.css", path)
    return re.sub(r"\{[^}]+\}", "x", path)


# ---- the clock -----------------------------------------------------------------------------------

class Clock:
    """A time source for `app.core.clock.set_source` (see the `clock` fixture): the real clock
    plus an offset the test sets, so time still runs, but from where the test put it; or held
    still (`stop`) for a test that must not lose a race against a short wait on a busy machine."""

    def __init__(self, start: datetime):
        self.offset = start - datetime.now(UTC)
        self.stopped: datetime | None = None

    def __call__(self) -> datetime:
        return self.stopped if self.stopped is not None else datetime.now(UTC) + self.offset

    def stop(self) -> None:
        """Hold time at this instant; only `advance` and `at_local` move it from now on."""
        self.stopped = self()

    def advance(self, **delta: float) -> None:
        """Jump ahead (`advance(seconds=5)`) instead of sleeping."""
        self._move(timedelta(**delta))

    def at_local(self, tz_name: str, hour: int = 12) -> date:
        """Go back to the latest hour:00 in `tz_name` (noon by default: half a day from either end
        of the business day, so a test counting a day cannot straddle two). Never forward: sessions
        and leases made before stay valid. Returns the local day it is then."""
        zone = ZoneInfo(tz_name)
        local = self().astimezone(zone)
        day = local.date() if local.hour >= hour else local.date() - timedelta(days=1)
        self._move(datetime.combine(day, time(hour), tzinfo=zone) - local)
        return day

    def _move(self, delta: timedelta) -> None:
        if self.stopped is not None:
            self.stopped += delta
        else:
            self.offset += delta


# ---- the database, from the test's own event loop ------------------------------------------------

async def on_engine(url: str, run: Callable[[Any], Awaitable[Any]]) -> Any:
    """`await run(connection)` on a fresh engine of `url`, disposed afterwards: the app's own
    engines belong to the event loop of its test client, not to the test's."""
    from app.core.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await run(conn)
    finally:
        await engine.dispose()


async def query(url: str, stmt: Any) -> Any:
    """The result of `stmt` on `url` (buffered by SQLAlchemy, so it outlives the engine)."""
    return await on_engine(url, lambda conn: conn.execute(stmt))


async def db_inspect(url: str, fn: Callable[[Any], Any]) -> Any:
    """`fn(inspector)` on `url`: the schema as the database reports it."""
    from sqlalchemy import inspect

    return await on_engine(url, lambda conn: conn.run_sync(lambda c: fn(inspect(c))))


async def seed(ctx: Any, **rows: list[dict]) -> None:
    """Insert rows directly, on an engine of this event loop (the app client runs in another)."""
    from sqlalchemy import insert

    from app.core.db import make_engine

    engine = make_engine(ctx.settings.database)
    try:
        async with engine.begin() as conn:
            for table, items in rows.items():
                for item in items:
                    await conn.execute(insert(ctx.catalog.tables[table].table).values(**item))
    finally:
        await engine.dispose()


def saved_id(location: str) -> str:
    """The row id a saved form redirected to: its own page, or its parent's page at the row."""
    return location.split("#row-")[1] if "#row-" in location else location.split("/")[-1].split("?")[0]


@contextmanager
def sent_statements(engine: Any, monkeypatch: Any, marker: str = "JOIN (SELECT") -> Iterator[list[tuple[str, Any]]]:
    """(SQL, parameters) of every statement containing `marker` that the app sends on `engine`,
    by SQLAlchemy or by the driver itself (`app.core.driver_reads`, the list page on MariaDB)."""
    from sqlalchemy import event

    from app.core import driver_reads

    sent: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if marker in sql:
            sent.append((sql, params))

    bind = driver_reads._Shape.args  # noqa: SLF001

    def args(shape: Any, key: Any) -> tuple[Any, ...]:
        values = bind(shape, key)
        if marker in shape.sql:
            sent.append((shape.sql, values))
        return values

    monkeypatch.setattr(driver_reads._Shape, "args", args)  # noqa: SLF001
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
