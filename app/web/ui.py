"""UI language and the small helpers every template uses.

Templates write UI text as `{{ _('Save') }}` (English msgid; `{name}` placeholders as keyword
arguments), `ngettext` and `pgettext` alike; the Chinese comes from the gettext catalogue
(docs/i18n.md). The result is plain text, escaped like any other value."""
from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from litestar import Request

from app.core import i18n
from app.core.context import ctx_of
from app.core.i18n import LANGS
from app.web import formatting

LANG_COOKIE = "lang"
# The lookup picker's texts: the generated forms (build/forms/, from templates/form_fields.j2,
# whose build-time delimiters the extractor cannot read) take them from here.
PICKER_TEXT = {"more": i18n.Msg("More results"), "none": i18n.Msg("No matches"),
               "denied": i18n.Msg("Searching is not granted; type an id"),
               "placeholder": i18n.Msg("Type a code, name or id")}
__all__ = ["LANGS", "LANG_COOKIE", "lang_of", "text", "localized"]


def lang_of(request: Request) -> str:
    """Chinese by default; the English switch is remembered in a cookie."""
    value = request.cookies.get(LANG_COOKIE, i18n.DEFAULT_LANG)
    return value if value in LANGS else i18n.DEFAULT_LANG


def text(request: Request, msgid: str, **params: Any) -> str:
    """`msgid` from the catalogue in the request's language (what `_()` is to templates)."""
    return i18n.gettext(lang_of(request), msgid, **params)


def localized(request: Request, value: Any) -> Any:
    """`value` with the lower layers' `Msg`s in it rendered in the request's language."""
    return i18n.localize(lang_of(request), value)


def _context_lang(context: Any) -> str:
    request = context.get("request")
    return lang_of(request) if request is not None else i18n.DEFAULT_LANG


@pass_context
def gettext_of(context: Any, msgid: str, **params: Any) -> str:
    return i18n.gettext(_context_lang(context), msgid, **params)


@pass_context
def ngettext_of(context: Any, singular: str, plural: str, n: int, **params: Any) -> str:
    return i18n.ngettext(_context_lang(context), singular, plural, n, **params)


@pass_context
def pgettext_of(context: Any, msgctxt: str, msgid: str, **params: Any) -> str:
    return i18n.pgettext(_context_lang(context), msgctxt, msgid, **params)


@pass_context
def ui_lang(context: Any) -> str:
    return _context_lang(context)


@pass_context
def picker_text(context: Any, key: str) -> str:
    return PICKER_TEXT[key].render(_context_lang(context))


@pass_context
def label(context: Any, obj: Any) -> str:
    """The title of a field, choice, table or module (spec `title` / `titles`) in the UI language."""
    request = context.get("request")
    lang = lang_of(request) if request is not None else i18n.DEFAULT_LANG
    if isinstance(obj, dict):
        return (obj.get("titles") or {}).get(lang) if lang != "zh" and (obj.get("titles") or {}).get(lang) \
            else obj.get("title", "")
    return obj.label(lang) if hasattr(obj, "label") else str(obj)


def zone_of(request: Request) -> str:
    """The business time zone pages show times in (`PIPELINE_TZ`)."""
    return ctx_of(request).settings.business_timezone


def _lang_zone(context: Any) -> tuple[str, str]:
    request = context.get("request")
    return (lang_of(request), zone_of(request)) if request is not None else (i18n.DEFAULT_LANG, "UTC")


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

    env.globals.update(_=gettext_of, gettext=gettext_of, ngettext=ngettext_of, pgettext=pgettext_of,
                       ui_lang=ui_lang, picker_text=picker_text, label=label, can=can, zone_note=zone_note_of)
    env.filters.update(money=money_filter, unit_price=unit_price_filter, when=when_filter)
