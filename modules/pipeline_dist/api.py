"""The distributor API (`/api/dist/v1`): keyed JSON endpoints other companies call.

Every route is behind the key check (`key_auth`, the router's middleware). Admission and finish
are `admission`; the rest (listings, usage, quota) are plain SQLAlchemy reads. Bodies are
`bodies`' Structs. The plugin (`plugin`) mounts `handlers`.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import and_, case, func, literal, select

from app.core.clock import business_day, clamp_day, midnight_utc, utcnow
from app.core.context import AppContext
from app.web.errors import documented_errors, error_response
from modules.pipeline_dist.admission import admit, finish
from modules.pipeline_dist.bodies import (
    AdmitIn,
    CallOut,
    FinishIn,
    PipelineOut,
    PipelineQuota,
    PriceOut,
    QuotaOut,
    QuotaReport,
    RejectionRow,
    StatementLine,
    StatementOut,
    StatementTotal,
    StepOut,
    UsageOut,
    UsageRow,
    call_out,
    money,
    stamp,
)
from modules.pipeline_dist.key_auth import distributor_of, key_middleware
from modules.pipeline_dist.limits import DistError, Limit, limits_for
from modules.pipeline_dist.state import state_of

MAX_USAGE_DAYS = 92

DIST_ERROR_TEXT = {
    400: "Bad JSON, wrong types or unknown fields (field messages in `fields`).",
    401: "Missing, malformed, unknown, revoked or expired key, or the account is not active.",
    404: "Not found, or not offered to you.", 409: "request_id already used for another pipeline.",
    422: "units × price is more than a call's amount can hold: send fewer units.",
    429: "A quota or concurrency limit is reached: see `limit`, Retry-After and RateLimit-* headers."}


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    return documented_errors(*statuses, text=DIST_ERROR_TEXT)


def dist_error_handler(request: Request, exc: DistError) -> Response:
    if exc.status == 401:
        return error_response(401, exc.message, headers={"WWW-Authenticate": 'Bearer realm="distributor API"'})
    if exc.status == 429 and exc.limit is not None:
        response = error_response(429, exc.message, headers=rate_headers(exc.limit, exc.used), code="rate_limited")
        response.content["error"]["limit"] = exc.limit.name
        return response
    return error_response(exc.status, exc.message, code=exc.code)


def rate_headers(limit: Limit, used: int) -> dict[str, str]:
    """IETF draft RateLimit-* (and X-RateLimit-* for older clients), all in delta seconds."""
    reset = str(limit.reset if limit.reset is not None else 1)
    remaining = str(max(0, (limit.limit or 0) - used))
    values = {"Limit": str(limit.limit), "Remaining": remaining, "Reset": reset}
    headers = {f"RateLimit-{k}": v for k, v in values.items()} | {f"X-RateLimit-{k}": v for k, v in values.items()}
    if remaining == "0":
        headers["Retry-After"] = reset
    return headers


_encode = msgspec.json.Encoder().encode


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


class JSONBytes:
    """A JSON body already encoded, sent as it is: the hot handlers return it instead of a Litestar
    Response, skipping the response machinery (header objects, content negotiation, serializer)."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None):
        self.body, self.status = body, status
        self.headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if headers:
            self.headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


# ---- handlers -------------------------------------------------------------------------------------------

@post("/pipelines/{code:str}/calls", status_code=201, operation_id="dist_admit_call", summary="Admit a metered call",
      description="Checks the key, the pipeline offer, every daily/monthly quota and concurrency limit in one "
                  "transaction and writes a running call with its price. Same request_id again: the first answer "
                  "(200, header Idempotent-Replayed: true), never a second charge.",
      responses={201: ResponseSpec(CallOut, description="Admitted: a running call with its price and quotas."),
                 200: ResponseSpec(CallOut, description="A repeat of an admitted request_id: the first answer."),
                 **_errors(400, 401, 404, 409, 422, 429)})
async def admit_call(request: Request, code: FromPath[str], data: JSONBody[AdmitIn]) -> JSONBytes:
    state, distributor_id = state_of(request), distributor_of(request)
    try:
        result = await admit(state.store, request.app.state.ctx.settings, distributor_id=distributor_id, code=code,
                             request_id=data.request_id, units=data.units, client_ip=client_ip(request))
    except DistError as exc:
        if exc.reason is not None:  # a refusal: counted in memory, written in the background
            state.activity.refused(distributor_id, exc.pipeline_id, exc.reason)
        raise
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    tight = [q for q in result.quotas if q["reset"] is not None]
    if tight:  # the quota closest to running out, for clients that pace themselves
        q = min(tight, key=lambda q: q["remaining"])
        headers |= {f"{p}RateLimit-{k}": str(v) for p in ("", "X-")
                    for k, v in (("Limit", q["max"]), ("Remaining", q["remaining"]), ("Reset", q["reset"]))}
    # Encoded here (msgspec, no enc_hook: every field is a str/int/None already), so Litestar sends
    # the bytes as they are instead of running its serializer on the Struct.
    return JSONBytes(_encode(call_out(result.call, result.quotas)), 200 if result.replayed else 201, headers)


@post("/calls/{call_id:str}/finish", status_code=200, operation_id="dist_finish_call", summary="Finish a call",
      description="Settles the amount (units may change here) and frees the concurrency slot, exactly once. "
                  "Finishing again, or after the lease expired the call, returns the settled call.",
      responses={200: ResponseSpec(CallOut, description="The settled call."), **_errors(400, 401, 404, 422)})
async def finish_call(request: Request, call_id: FromPath[str], data: JSONBody[FinishIn]) -> JSONBytes:
    call = await finish(state_of(request).store, distributor_id=distributor_of(request), call_id=call_id,
                            status=data.status, units=data.units)
    return JSONBytes(_encode(call_out(call)))


async def _offered(ctx: AppContext, distributor_id: str, code: str | None = None) -> list[PipelineOut]:
    """Active, published pipelines this distributor is enabled for now, with its effective price."""
    from modules.pipeline_ops.pricing import resolve_prices

    t = ctx.catalog.tables
    p, lk = t["pipelines"].table, t["distributor_pipeline"].table
    now = utcnow()
    stmt = (select(p.c.id, p.c.code, p.c.name, p.c.description, p.c.published_version)
            .join(lk, and_(lk.c.pipeline_id == p.c.id, lk.c.distributor_id == distributor_id))
            .where(lk.c.enabled == "1", p.c.status == "active", p.c.published_version.is_not(None),
                   (lk.c.effective_from.is_(None)) | (lk.c.effective_from <= now),
                   (lk.c.effective_to.is_(None)) | (lk.c.effective_to > now))
            .order_by(p.c.code).limit(1000))
    if code is not None:
        stmt = stmt.where(p.c.code == code)
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
        prices = await resolve_prices(conn, ctx.catalog, distributor_id=distributor_id,
                                      pipeline_ids=[r.id for r in rows], at=now)
    out = []
    for r in rows:
        price = prices.get(r.id)
        if price is None:
            continue  # not priced: not offered (admission refuses it the same way)
        out.append(PipelineOut(code=r.code, name=r.name, description=r.description, version_no=r.published_version,
                               price=PriceOut(mode=price.mode, unit_price=money(price.unit_price),
                                              package_units=price.package_units,
                                              package_price=money(price.package_price), currency=price.currency,
                                              billing_unit=price.billing_unit)))
    return out


@get("/pipelines", operation_id="dist_list_pipelines", summary="Pipelines offered to you",
     responses=_errors(401))
async def list_pipelines(request: Request) -> list[PipelineOut]:
    return await _offered(request.app.state.ctx, distributor_of(request))


@get("/pipelines/{code:str}", operation_id="dist_get_pipeline", summary="One offered pipeline with its steps",
     description="The published version's steps (never the draft).", responses=_errors(401, 404))
async def get_pipeline(request: Request, code: FromPath[str]) -> PipelineOut:
    import json

    ctx: AppContext = request.app.state.ctx
    found = await _offered(ctx, distributor_of(request), code)
    if not found:
        raise DistError(404, "pipeline not found")
    out = found[0]
    p, v = ctx.catalog.tables["pipelines"].table, ctx.catalog.tables["pipeline_versions"].table
    async with ctx.db.connect() as conn:
        snapshot = (await conn.execute(select(v.c.snapshot).join(p, p.c.id == v.c.pipeline_id).where(
            p.c.code == code, v.c.version_no == out.version_no))).scalar()
    steps = json.loads(snapshot).get("steps", []) if snapshot else []
    out.steps = [StepOut(seq=int(s.get("seq") or 0), name=str(s.get("name")), step_type=s.get("step_type"),
                         model=s.get("model"), parallel_group=s.get("parallel_group")) for s in steps]
    return out


@get("/usage", operation_id="dist_usage", summary="Your usage by business day and pipeline",
     description=f"Dates are business days (YYYY-MM-DD, both ends included; default the last 7 days, at most "
                 f"{MAX_USAGE_DAYS}). `rejections`: your refused calls per day, pipeline and reason.",
     responses=_errors(400, 401))
async def usage(request: Request,
                date_from: Annotated[date | None, QueryParameter(name="from", description="First day")] = None,
                date_to: Annotated[date | None, QueryParameter(name="to", description="Last day")] = None,
                pipeline: Annotated[str | None, QueryParameter(description="Pipeline code")] = None) -> UsageOut:
    ctx: AppContext = request.app.state.ctx
    tz_name = ctx.settings.business_timezone
    today = business_day(tz_name, utcnow())
    date_to = clamp_day(date_to or today)
    date_from = clamp_day(date_from or date_to - timedelta(days=6))
    if date_from > date_to:
        raise DistError(400, "`from` is after `to`")
    if (date_to - date_from).days >= MAX_USAGE_DAYS:
        raise DistError(400, f"at most {MAX_USAGE_DAYS} days at a time")
    days = [date_from + timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    bounds = [midnight_utc(d, tz_name) for d in [*days, date_to + timedelta(days=1)]]
    u, p = ctx.catalog.tables["pipeline_usage_log"].table, ctx.catalog.tables["pipelines"].table
    day = case(*[(u.c.started_at < bounds[i + 1], literal(d.isoformat())) for i, d in enumerate(days)])

    def count(status: str) -> Any:
        return func.sum(case((u.c.status == status, 1), else_=0))

    # The pipeline as the calls were billed (the code kept on each row), today's code for rows
    # from before that snapshot, the raw id for a pipeline gone since.
    code = func.coalesce(u.c.pipeline_code, p.c.code, u.c.pipeline_id)
    stmt = (select(day.label("day"), code, u.c.currency, func.count().label("calls"), count("running"),
                   count("succeeded"), count("failed"), count("expired"), func.sum(u.c.units), func.sum(u.c.amount))
            .select_from(u.outerjoin(p, p.c.id == u.c.pipeline_id))
            .where(u.c.distributor_id == distributor_of(request), u.c.started_at >= bounds[0],
                   u.c.started_at < bounds[-1])
            .group_by(day, code, u.c.currency).order_by(day, code))
    if pipeline:
        stmt = stmt.where(code == pipeline)
    rj = ctx.catalog.tables["dist_rejections"].table
    refusals = (select(rj.c.day, p.c.code, rj.c.reason, func.sum(rj.c.refusals))
                .outerjoin(p, p.c.id == rj.c.pipeline_id)
                .where(rj.c.distributor_id == distributor_of(request), rj.c.day >= date_from, rj.c.day <= date_to)
                .group_by(rj.c.day, p.c.code, rj.c.reason).order_by(rj.c.day, p.c.code, rj.c.reason))
    if pipeline:
        refusals = refusals.where(p.c.code == pipeline)
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
        refused = (await conn.execute(refusals)).all()
    return UsageOut(timezone=tz_name, date_from=date_from.isoformat(), date_to=date_to.isoformat(), rows=[
        UsageRow(date=r[0], pipeline=r[1], currency=r[2], calls=int(r[3]), running=int(r[4] or 0),
                 succeeded=int(r[5] or 0), failed=int(r[6] or 0), expired=int(r[7] or 0), units=int(r[8] or 0),
                 amount=money(Decimal(str(r[9] or 0)))) for r in rows],
        rejections=[RejectionRow(date=r[0].isoformat(), pipeline=r[1], reason=r[2], refused=int(r[3]))
                    for r in refused])


@get("/statements/{month:str}", operation_id="dist_statement", summary="Your statement for a month",
     description="Per pipeline, currency and price mode: calls, units and amount of the calls that started in that "
                 "business month (YYYY-MM, see `timezone`). Open months are counted now; a closed month is frozen. "
                 "Totals are the exact sum of the lines and adjustments.", responses=_errors(400, 401))
async def statement(request: Request, month: FromPath[str]) -> StatementOut:
    from modules.pipeline_dist.statements import parse_month
    from modules.pipeline_dist.statements import statement as statement_of

    try:
        first = parse_month(month)
    except ValueError:
        raise DistError(400, "the month is YYYY-MM, e.g. 2026-11") from None
    st = await statement_of(request.app.state.ctx, distributor_of(request), first)

    def lines(items: list) -> list[StatementLine]:
        return [StatementLine(pipeline=x.pipeline, name=x.name, currency=x.currency, price_mode=x.price_mode,
                              calls=x.calls, units=x.units, amount=f"{x.amount:.6f}", month=x.month) for x in items]

    return StatementOut(month=st.month, timezone=st.timezone, status="closed" if st.closed_at else "open",
                        closed_at=stamp(st.closed_at), lines=lines(st.lines), adjustments=lines(st.adjustments),
                        totals=[StatementTotal(**t) for t in st.totals()])


@get("/quota", operation_id="dist_quota", summary="Your quotas and concurrency now",
     description="Daily/monthly quotas that are set, and concurrency (max null = unlimited) for your account and "
                 "each pipeline offered to you.", responses=_errors(401))
async def quota(request: Request) -> QuotaReport:
    ctx: AppContext = request.app.state.ctx
    t = ctx.catalog.tables
    d, lk, p, c = (t["distributors"].table, t["distributor_pipeline"].table, t["pipelines"].table,
                   t["pipeline_capacity"].table)
    distributor_id, now = distributor_of(request), utcnow()
    async with ctx.db.connect() as conn:
        dist = (await conn.execute(select(d.c.daily_quota, d.c.monthly_quota, d.c.max_concurrency)
                                   .where(d.c.id == distributor_id))).one()
        links = (await conn.execute(
            select(p.c.id, p.c.code, lk.c.daily_quota, lk.c.monthly_quota, c.c.status, c.c.daily_quota,
                   c.c.monthly_quota, c.c.max_concurrency)
            .join(lk, and_(lk.c.pipeline_id == p.c.id, lk.c.distributor_id == distributor_id))
            .outerjoin(c, c.c.pipeline_id == p.c.id)
            .where(lk.c.enabled == "1", p.c.status == "active", p.c.published_version.is_not(None),
                   (lk.c.effective_from.is_(None)) | (lk.c.effective_from <= now),
                   (lk.c.effective_to.is_(None)) | (lk.c.effective_to > now))
            .order_by(p.c.code).limit(1000))).all()
        base = {"d_daily": dist[0], "d_monthly": dist[1], "d_conc": dist[2]}
        per_pipeline = [(r[1], limits_for({**base, "l_daily": r[2], "l_monthly": r[3], "c_status": r[4],
                                                "c_daily": r[5], "c_monthly": r[6], "c_conc": r[7]},
                                               distributor_id, r[0], ctx.settings.business_timezone, now))
                        for r in links]
        own = [lim for lim in limits_for(base, distributor_id, "-", ctx.settings.business_timezone, now)
               if lim.name.startswith("distributor.")]
        ids = {lim.counter_id for lim in own} | {lim.counter_id for _, lims in per_pipeline for lim in lims}
        q = t["quota_counters"].table
        used = {row.id: int(row.used) for row in await conn.execute(select(q.c.id, q.c.used).where(q.c.id.in_(ids)))}

    def shown(lims: list[Limit]) -> list[QuotaOut]:
        return [QuotaOut(**lim.quota(used.get(lim.counter_id, 0))) for lim in lims
                if lim.limit is not None or lim.reset is None]

    return QuotaReport(timezone=ctx.settings.business_timezone, distributor=shown(own), pipelines=[
        PipelineQuota(pipeline=code, quotas=shown([lim for lim in lims if not lim.name.startswith("distributor.")]))
        for code, lims in per_pipeline])


handlers: list = [Router(
    "/api/dist/v1", route_handlers=[list_pipelines, get_pipeline, admit_call, finish_call, usage, quota, statement],
    middleware=[key_middleware], exception_handlers={DistError: dist_error_handler}, tags=["Distributor API"],
    security=[{"DistributorKey": []}, {"DistributorApiKey": []}])]
