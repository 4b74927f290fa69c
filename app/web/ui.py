"""UI language and the small helpers every template uses."""
from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from litestar import Request

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


def register_globals(env: Any) -> None:
    from app.web.permits import can

    env.globals.update(tr=tr, label=label, can=can)
