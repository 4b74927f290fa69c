"""Publishing a pipeline: validate it, freeze it as an immutable version, roll back to an old one.

A published version is what callers run and what billing prices, so publish refuses a pipeline
that could not run or could not be billed, and reports every problem at once (an operator fixes
them in one pass rather than one per attempt). The version row, the superseding of the previous
one, the move of `pipelines.published_version` and the audit trail are one transaction.

Concurrency: the pipeline row is locked before the next version number is read, so two publishes
of one pipeline queue behind each other (`SELECT ... FOR UPDATE` on MariaDB/PostgreSQL; on SQLite
a no-op UPDATE first, because pysqlite opens the transaction lazily at the first write and the
write lock must be held before anything is read). The unique (pipeline_id, version_no) index is
the backstop: a clash there retries the whole transaction once.

Parallel-group rule: steps are numbered by `seq`; the distinct numbers must be exactly 1..n.
Steps sharing a number run in parallel and must all carry the same non-null `parallel_group`;
a serial step (null group) must be alone at its number. A step alone at its number may carry a
group (a group of one). The same group name may be reused at another number: a group is scoped
by its `seq`.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg, joined
from app.core.catalog import TableView
from app.core.clock import utcnow
from app.core.context import AppContext
from app.core.ids import new_id
from app.core.retry import Retryable, retrying
from app.crud.rows import Actor, CrudError, jsonable
from app.crud.store import audit
from modules.pipeline_ops.pricing import pick_price

PUBLISHABLE = ("draft", "active")
STAMPS = ("created_at", "updated_at")
# Fields that change because of publishing itself, so they are not part of what is published.
PIPELINE_SKIP = (*STAMPS, "published_version")
NOTE_MAX = 500
T = TypeVar("T")


def tables_of(ctx: AppContext) -> tuple[TableView, TableView, TableView]:
    t = ctx.catalog.tables
    return t["pipelines"], t["pipeline_steps"], t["pipeline_versions"]


def canonical(value: Any) -> str:
    """One text per content: sorted keys, no spaces, exact decimals/times (comparable, diffable)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=jsonable)


def step_order(step: dict) -> tuple:
    return (step.get("seq") or 0, str(step.get("name") or ""), str(step.get("id") or ""))


def snapshot_of(pipeline: dict, steps: list[dict]) -> dict[str, Any]:
    """What a version freezes: the pipeline's own fields and its ordered steps, without stamps."""
    return {
        "pipeline": {k: jsonable(v) for k, v in pipeline.items() if k not in PIPELINE_SKIP},
        "steps": [{k: jsonable(v) for k, v in s.items() if k not in STAMPS}
                  for s in sorted(steps, key=step_order)],
    }


# ---- validation ---------------------------------------------------------------------------

def _seq_problems(steps: list[dict]) -> dict[str, str]:
    seqs = sorted({s["seq"] for s in steps if s.get("seq") is not None})
    if seqs == list(range(1, len(seqs) + 1)):
        return {}
    missing = sorted(set(range(1, (max(seqs) if seqs else 0) + 1)) - set(seqs))
    why = Msg("must start at 1") if not seqs or seqs[0] != 1 else Msg("has gaps")
    detail = Msg("; missing {numbers}", numbers=", ".join(map(str, missing))) if missing else ""
    return {"seq": Msg("step numbers (seq) {why}: they must run 1, 2, 3… without gaps, parallel steps sharing a "
                       "number; found {found}{detail}", why=why, found=", ".join(map(str, seqs)), detail=detail)}


def _parallel_problems(steps: list[dict]) -> dict[str, str]:
    by_seq: dict[Any, list[dict]] = {}
    for s in steps:
        by_seq.setdefault(s.get("seq"), []).append(s)
    problems = {}
    for seq, group in sorted(by_seq.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        groups = {s.get("parallel_group") for s in group}
        if len(group) > 1 and (len(groups) != 1 or None in groups):
            names = ", ".join(f'"{s["name"]}"' for s in sorted(group, key=step_order))
            found = joined(", ", [*sorted(f'"{g}"' for g in groups if g is not None),
                                  *([Msg("none (serial)")] if None in groups else [])])
            problems[f"parallel_group.{seq}"] = Msg(
                "steps {names} share seq {seq}, so they run in parallel and must all have the same parallel group "
                "(a serial step must be alone at its seq); found groups: {found}", names=names, seq=seq, found=found)
    return problems


def _config_problems(steps: list[dict]) -> dict[str, str]:
    problems = {}
    for s in steps:
        text = s.get("config")
        if text is None or not str(text).strip():
            continue
        try:
            json.loads(text)
        except ValueError as exc:
            problems[f"config.{s['name']}"] = (Msg('step "{step}": config is not valid JSON ({msg}, line {line})',
                                                   step=s["name"],
                                                   msg=exc.msg, line=getattr(exc, 'lineno', '?')))
    return problems


def _pricing_problems(steps: list[dict], prices: list[dict], now: datetime) -> dict[str, str]:
    """A step that calls a model must be billable now, by the same rule billing uses
    (`pipeline_ops.pricing.pick_price`): an active row in its period for this step and model, this
    step and any model, or the whole pipeline (step and model empty), with the numbers its price
    mode needs."""
    problems = {}
    for s in steps:
        model = s.get("model")
        if model and pick_price(prices, step_id=s["id"], model=model, at=now) is None:
            problems[f"pricing.{s['name']}"] = (
                Msg('step "{step}" (model "{model}") has no active price now: add an active pipeline_pricing row '
                    'effective now for step "{step}" (model "{model}" or any model) or for the whole pipeline '
                    '(step and model empty)', step=s["name"], model=model))
    return problems


def problems_of(pipeline: dict, steps: list[dict], prices: list[dict], now: datetime) -> dict[str, str]:
    """Every reason `pipeline` with `steps` may not be published, keyed by a stable problem key."""
    problems: dict[str, str] = {}
    if pipeline.get("status") not in PUBLISHABLE:
        problems["status"] = Msg("the pipeline is {status}; only active or draft pipelines can be published",
                                 status=pipeline.get("status"))
    if not steps:
        problems["steps"] = Msg('the pipeline has no steps; add at least one')
    return (problems | _seq_problems(steps) | _parallel_problems(steps) | _config_problems(steps)
            | _pricing_problems(steps, prices, now))


async def active_prices(ctx: AppContext, conn: AsyncConnection, pipeline_id: str,
                        now: datetime) -> list[dict]:
    pr = ctx.catalog.tables["pipeline_pricing"].table
    rows = await conn.execute(select(pr).where(
        pr.c.pipeline_id == pipeline_id, pr.c.status == "active", pr.c.effective_from <= now,
        or_(pr.c.effective_to.is_(None), pr.c.effective_to > now)))
    return [dict(r._mapping) for r in rows]


def _refuse(problems: dict[str, str]) -> CrudError:
    n = len(problems)
    # The message names the problems; their text is in `errors` (the HTML flash prints both).
    listed = ", ".join(problems)
    return CrudError(422, Msg("cannot publish: 1 problem ({problems})", problems=listed) if n == 1 else
                     Msg("cannot publish: {n} problems ({problems})", n=n, problems=listed), problems)


# ---- the transaction ----------------------------------------------------------------------

async def _locked_pipeline(ctx: AppContext, conn: AsyncConnection, pipeline_id: str) -> dict:
    """Lock the pipeline row first, so the version number read after it is the latest one."""
    p = tables_of(ctx)[0].table
    if conn.dialect.name == "sqlite":
        await conn.execute(update(p).where(p.c.id == pipeline_id).values(id=p.c.id))
    row = (await conn.execute(select(p).where(p.c.id == pipeline_id).with_for_update())).first()
    if row is None:
        raise CrudError(404, Msg('no such pipeline'))
    return dict(row._mapping)


async def current_steps(ctx: AppContext, conn: AsyncConnection, pipeline_id: str) -> list[dict]:
    s = tables_of(ctx)[1].table
    rows = await conn.execute(
        select(s).where(s.c.pipeline_id == pipeline_id).order_by(s.c.seq, s.c.name, s.c.id))
    return [dict(r._mapping) for r in rows]


async def next_version_no(ctx: AppContext, conn: AsyncConnection, pipeline_id: str) -> int:
    v = tables_of(ctx)[2].table
    top = select(func.coalesce(func.max(v.c.version_no), 0)).where(v.c.pipeline_id == pipeline_id)
    return int((await conn.execute(top)).scalar_one()) + 1


async def _write_version(ctx: AppContext, conn: AsyncConnection, pipeline: dict, snapshot: str,
                         note: str | None, actor: Actor, action: str) -> dict:
    """Supersede the published version, add the next one, move the pipeline to it; audit both rows."""
    ptv, _, vtv = tables_of(ctx)
    p, v = ptv.table, vtv.table
    now = utcnow()
    number = await next_version_no(ctx, conn, pipeline["id"])
    await conn.execute(update(v).where(v.c.pipeline_id == pipeline["id"], v.c.status == "published")
                       .values(status="superseded", updated_at=now))
    values = dict(id=new_id(), pipeline_id=pipeline["id"], version_no=number, snapshot=snapshot,
                  status="published", note=note, published_by=actor.user_id, published_at=now,
                  created_at=now, updated_at=now)
    await conn.execute(insert(v).values(**values))
    await conn.execute(update(p).where(p.c.id == pipeline["id"])
                       .values(published_version=number, updated_at=now))
    after = dict((await conn.execute(select(p).where(p.c.id == pipeline["id"]))).one()._mapping)
    await audit(ctx, conn, actor, action, ptv, pipeline["id"], pipeline, after)
    await audit(ctx, conn, actor, action, vtv, values["id"], None, values)
    return values


async def _with_retry(ctx: AppContext, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction; a version-number clash (a racing publish) retries once."""
    def lost() -> CrudError:
        return CrudError(409, Msg('another change to this pipeline got there first; try again'))

    async def attempt() -> T:
        try:
            async with ctx.db.begin() as conn:
                return await work(conn)
        except IntegrityError as exc:
            text = str(exc.orig).lower()
            if "pipeline_versions" in text and ("unique" in text or "duplicate" in text):
                raise Retryable(text) from None
            raise lost() from None

    return await retrying(attempt, path="publish", give_up=lost, attempts=2, delay=0)


def version_out(row: dict) -> dict[str, Any]:
    """A version as the API returns it: JSON values, the snapshot parsed."""
    out = {k: jsonable(v) for k, v in row.items()}
    out["snapshot"] = json.loads(row["snapshot"])
    return out


def clean_note(note: Any) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str):
        raise CrudError(422, Msg('invalid input'), {"note": Msg('must be text')})
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise CrudError(422, Msg('invalid input'), {"note": Msg('at most {note_max} characters', note_max=NOTE_MAX)})
    return note or None


async def publish(ctx: AppContext, pipeline_id: str, actor: Actor, note: Any = None) -> dict[str, Any]:
    """Validate the pipeline as it is now and publish it as the next version."""
    note = clean_note(note)

    async def work(conn: AsyncConnection) -> dict:
        pipeline = await _locked_pipeline(ctx, conn, pipeline_id)
        steps = await current_steps(ctx, conn, pipeline_id)
        now = utcnow()
        problems = problems_of(pipeline, steps, await active_prices(ctx, conn, pipeline_id, now), now)
        if problems:
            raise _refuse(problems)
        return await _write_version(ctx, conn, pipeline, canonical(snapshot_of(pipeline, steps)), note, actor,
                                    "publish")

    return version_out(await _with_retry(ctx, work))


def parse_version_no(raw: Any) -> int:
    try:
        if isinstance(raw, bool) or raw is None or str(raw).strip() == "":
            raise ValueError
        number = int(str(raw).strip())
        if number < 1:
            raise ValueError
        return number
    except ValueError:
        raise CrudError(422, Msg('choose the version to roll back to'),
                        {"version_no": Msg('must be a version number (1, 2, …)')}) from None


def _from_json(tv: TableView, name: str, value: Any) -> Any:
    """A snapshot value back to the column's Python type (snapshots hold JSON scalars)."""
    if value is None:
        return None
    kind = tv.fields[name].type
    if tv.fields[name].is_datetime:
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "time":
        return time.fromisoformat(value)
    if kind == "decimal":
        return Decimal(str(value))
    return value


async def _restore_steps(ctx: AppContext, conn: AsyncConnection, pipeline_id: str, wanted: list[dict],
                         actor: Actor) -> None:
    """Make the pipeline's steps exactly the snapshot's, keeping the ids.

    Steps that survive are updated in place rather than deleted and re-inserted, because deleting a
    step cascades to its step-level prices in pipeline_pricing. Fields the table no longer has are
    dropped; fields added since the snapshot keep their current value or default.
    """
    stv = tables_of(ctx)[1]
    s = stv.table
    now = utcnow()
    current = {r["id"]: r for r in await current_steps(ctx, conn, pipeline_id)}
    rows = [{k: _from_json(stv, k, v) for k, v in w.items() if k in stv.fields and k not in STAMPS}
            | {"pipeline_id": pipeline_id} for w in wanted]
    keep = {r["id"] for r in rows}
    for sid, before in current.items():
        if sid not in keep:
            await conn.execute(delete(s).where(s.c.id == sid))
            await audit(ctx, conn, actor, "rollback", stv, sid, before, None)
    # Names are unique per pipeline: park renamed steps under their id first, so swapping names works.
    for r in rows:
        if r["id"] in current and current[r["id"]]["name"] != r["name"]:
            await conn.execute(update(s).where(s.c.id == r["id"]).values(name=f"~{r['id']}"))
    for r in rows:
        before = current.get(r["id"])
        if before is None:
            await conn.execute(insert(s).values(**r, created_at=now, updated_at=now))
        else:
            changed = {k: v for k, v in r.items() if before.get(k) != v}
            if not changed:
                continue
            await conn.execute(update(s).where(s.c.id == r["id"]).values(**changed, updated_at=now))
        after = dict((await conn.execute(select(s).where(s.c.id == r["id"]))).one()._mapping)
        await audit(ctx, conn, actor, "rollback", stv, r["id"], before, after)


async def rollback(ctx: AppContext, pipeline_id: str, version_no: Any, actor: Actor) -> dict[str, Any]:
    """Publish version N's snapshot again as a new version and restore the steps from it.

    The restored steps are validated like any publish (status, pricing now, ...): a version that
    could not be billed today is not made live again.
    """
    number = parse_version_no(version_no)

    async def work(conn: AsyncConnection) -> dict:
        pipeline = await _locked_pipeline(ctx, conn, pipeline_id)
        v = tables_of(ctx)[2].table
        old = (await conn.execute(select(v.c.snapshot).where(v.c.pipeline_id == pipeline_id,
                                                             v.c.version_no == number))).first()
        if old is None:
            raise CrudError(404, Msg('this pipeline has no version {number}', number=number),
                            {"version_no": Msg('no version {number}', number=number)})
        steps = json.loads(old.snapshot)["steps"]
        now = utcnow()
        problems = problems_of(pipeline, steps, await active_prices(ctx, conn, pipeline_id, now), now)
        if problems:
            raise _refuse(problems)
        await _restore_steps(ctx, conn, pipeline_id, steps, actor)
        return await _write_version(ctx, conn, pipeline, old.snapshot, f"rollback to {number}", actor,
                                    "rollback")

    return version_out(await _with_retry(ctx, work))


# ---- diffs --------------------------------------------------------------------------------

def _field_changes(old: dict, new: dict, skip: tuple[str, ...],
                   order: list[str]) -> list[tuple[str, Any, Any]]:
    names = [k for k in new if k not in skip] + [k for k in old if k not in new and k not in skip]
    names.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    return [(k, old.get(k), new.get(k)) for k in names if old.get(k) != new.get(k)]


def diff_snapshots(old: dict | None, new: dict, pipeline_fields: list[str] | None = None,
                   step_fields: list[str] | None = None) -> dict[str, Any]:
    """What changed from one snapshot to the next: pipeline fields, and steps (matched by id)
    added, removed or changed with each field's old → new value (fields in the given order,
    the spec's, since snapshot keys are sorted)."""
    old = old or {"pipeline": {}, "steps": []}
    pipeline_fields, step_fields = pipeline_fields or [], step_fields or []
    before = {s["id"]: s for s in old.get("steps", [])}
    after = {s["id"]: s for s in new.get("steps", [])}
    changed = []
    for sid, step in after.items():
        if sid in before:
            fields = _field_changes(before[sid], step, ("id", "pipeline_id"), step_fields)
            if fields:
                changed.append({"step": step, "fields": fields})
    return {
        "pipeline": (_field_changes(old["pipeline"], new.get("pipeline", {}), ("id",), pipeline_fields)
                     if old.get("pipeline") else []),
        "added": [s for sid, s in after.items() if sid not in before],
        "removed": [s for sid, s in before.items() if sid not in after],
        "changed": changed,
    }
