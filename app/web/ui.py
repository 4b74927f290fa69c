"""UI language and the small helpers every template uses."""
from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from litestar import Request

from app.core.context import ctx_of
from app.web import formatting

LANGS = ("zh", "en")
LANG_COOKIE = "lang"


def lang_of(request: Request) -> str:
    """Chinese by default; the English switch is remembered in a cookie."""
    value = request.cookies.get(LANG_COOKIE, "zh")
    return value if value in LANGS else "zh"


@pass_context
def tr(context: Any, zh: str, en: str) -> str:
    """`{{ tr('保存', 'Save') }}`: UI text that is not from a spec, in both languages."""
    request = context.get("request")
    return en if request is not None and lang_of(request) == "en" else zh


@pass_context
def label(context: Any, obj: Any) -> str:
    """The title of a field, choice, table or module (spec `title` / `titles`) in the UI language."""
    request = context.get("request")
    lang = lang_of(request) if request is not None else "zh"
    if isinstance(obj, dict):
        return (obj.get("titles") or {}).get(lang) if lang != "zh" and (obj.get("titles") or {}).get(lang) \
            else obj.get("title", "")
    return obj.label(lang) if hasattr(obj, "label") else str(obj)


def zone_of(request: Request) -> str:
    """The business time zone pages show times in (`PIPELINE_TZ`)."""
    return ctx_of(request).settings.business_timezone


def _lang_zone(context: Any) -> tuple[str, str]:
    request = context.get("request")
    return (lang_of(request), zone_of(request)) if request is not None else ("zh", "UTC")


@pass_context
def zone_note_of(context: Any, f: Any = None) -> Any:
    """`{{ label(f) }}{{ zone_note(f) }}`: the zone a datetime field's times are shown in ("" for
    other fields); `zone_note()` for a heading over times of any kind."""
    if f is not None and not getattr(f, "is_datetime", False):
        return ""
    return formatting.zone_note(_lang_zone(context)[1])


@pass_context
def money_filter(context: Any, value: Any, currency: str | None = None) -> str:
    """`{{ amount | money(currency) }}`."""
    return "" if value is None else formatting.money(value, currency, _lang_zone(context)[0])


@pass_context
def unit_price_filter(context: Any, value: Any, currency: str | None = None, scale: int | None = 6) -> str:
    """`{{ price | unit_price(currency) }}`."""
    return "" if value is None else formatting.unit_price(value, currency, scale, _lang_zone(context)[0])


@pass_context
def when_filter(context: Any, value: Any) -> str:
    """`{{ row.created_at | when }}`: a stored time in the business zone."""
    when = formatting.as_datetime(value) if value is not None else None
    if when is None:
        return "" if value is None else str(value)
    return formatting.local_time(when, _lang_zone(context)[1])


def register_globals(env: Any) -> None:
    from app.web.permits import can

    env.globals.update(tr=tr, label=label, can=can, zone_note=zone_note_of)
    env.filters.update(money=money_filter, unit_price=unit_price_filter, when=when_filter)
