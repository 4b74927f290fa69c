"""Distributor record page: key buttons (generate / rotate / revoke) and its effective prices.

Each key action serves the page button and the JSON API (app/web/actions.py). The JSON caller gets
`{"api_key", "prefix"}`; the page gets `_secret` (the key and a ready curl command with it),
which the runtime shows once on the record page and never again. The two answers are told
apart by the path so the JSON body never carries `_secret` and the page never carries the key
outside that one-time block.
"""
from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from sqlalchemy import select

from app.core.catalog import TableView
from app.core.clock import utcnow
from app.core.context import ctx_of
from app.core.i18n import Msg, gettext
from app.crud.rows import CrudError, public
from app.web.ui import lang_of
from modules.pipeline_dist.key_page import keys_block, try_it
from modules.pipeline_dist.keys import issue_key, revoke_key
from modules.pipeline_ops.pricing import choice_label, describe, resolve_prices, table_html

# UI text of this module's blocks (Chinese in the catalogue, docs/i18n.md)
T_EFFECTIVE_PRICES = Msg('Effective prices')
T_NO_PIPELINE_ENABLED = Msg('No pipeline enabled')


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _only(data: dict[str, Any], allowed: set[str]) -> None:
    """Unknown body fields are a 422, as everywhere in the API (a misspelt grace_hours must not pass)."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CrudError(422, Msg('invalid input'), {k: Msg('unknown field') for k in unknown})


def _answer(request: Request, key: str, row: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    if _is_api(request):
        return {"api_key": key, "prefix": row["api_key_prefix"], **extra}
    lang = lang_of(request)
    message = gettext(
        lang, "This is the only time the new key is shown: copy it now and hand it over safely. "
              "It cannot be displayed again.")
    return {"_secret": {"message": message, "value": key, "example": try_it(request, key),
                        "example_title": gettext(lang, "Try it (lists this distributor's pipelines and prices):")}}


async def generate_key(request: Request, tv: TableView, row_id: str, data: dict[str, Any]) -> dict[str, Any]:
    from app.web.views.common import actor_of

    _only(data, set())
    key, row = await issue_key(ctx_of(request), actor_of(request), row_id)
    return _answer(request, key, row, {})


async def rotate_key(request: Request, tv: TableView, row_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Body (optional): `{"grace_hours": n}` — how long the old key keeps working; 0 for a leak."""
    from app.web.views.common import actor_of

    _only(data, {"grace_hours"})
    key, row = await issue_key(ctx_of(request), actor_of(request), row_id, rotate=True,
                               grace_hours=data.get("grace_hours"))
    until = row["prev_key_expires_at"]
    return _answer(request, key, row, {"prev_key_expires_at": until.isoformat(sep=" ") if until else None})


async def revoke_key_action(request: Request, tv: TableView, row_id: str,
                            data: dict[str, Any]) -> dict[str, Any]:
    from app.web.views.common import actor_of

    _only(data, set())
    return public(tv, await revoke_key(ctx_of(request), actor_of(request), row_id))


async def distributor_prices(request: Request, tv: TableView, row: dict[str, Any]) -> list[str]:
    """What this distributor pays now on each enabled pipeline: its own price, else the list price."""
    ctx, lang, now = ctx_of(request), lang_of(request), utcnow()
    lt, pt = ctx.catalog.tables["distributor_pipeline"].table, ctx.catalog.tables["pipelines"].table
    ptv = ctx.catalog.tables["pipeline_pricing"]
    async with ctx.db.connect() as conn:
        links = (await conn.execute(
            select(lt.c.pipeline_id, pt.c.name).join(pt, pt.c.id == lt.c.pipeline_id)
            .where(lt.c.distributor_id == row["id"], lt.c.enabled == "1")
            .order_by(pt.c.name).limit(500))).all()
        prices = await resolve_prices(conn, ctx.catalog, distributor_id=row["id"],
                                      pipeline_ids=[link.pipeline_id for link in links], at=now)
    head = f"<section class='extra dist-prices'><h2>{T_EFFECTIVE_PRICES.render(lang)}</h2>"
    if not links:
        return [head + f"<p class='empty'>{T_NO_PIPELINE_ENABLED.render(lang)}</p></section>"]
    base = ctx.catalog.tables["pipelines"].base
    sources = {"distributor": gettext(lang, 'Own price')}
    body = []
    for link in links:
        price = prices.get(link.pipeline_id)
        cells = [f"<a href='{base}/{escape(link.pipeline_id)}'>{escape(link.name)}</a>"]
        if price is None:
            cells += [gettext(lang, 'no price now'), ""]
        else:
            cells += [describe(price, choice_label(ptv, "billing_unit", price.billing_unit, lang), lang),
                      sources.get(price.source, gettext(lang, 'List price'))]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    cols = [gettext(lang, 'Pipeline'), gettext(lang, 'Price'),
            gettext(lang, 'Source')]
    return [head + table_html(cols, body) + "</section>"]


ACTIONS = {"distributors": {"generate_key": generate_key, "rotate_key": rotate_key,
                            "revoke_key": revoke_key_action}}


async def distributor_page_blocks(request: Request, tv: TableView, row: dict[str, Any]) -> list[str]:
    """The distributor's page: its keys, its effective prices, its calls and refusals per day."""
    from modules.pipeline_ops.usage_report import distributor_chart

    return [keys_block(request, tv, row), *await distributor_prices(request, tv, row),
            await distributor_chart(request, tv, row)]


EXTRAS = {"distributors": distributor_page_blocks}
