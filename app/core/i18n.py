"""The UI's languages from one gettext catalogue: English msgids, Chinese in
`app/locale/zh/LC_MESSAGES/messages.po`, compiled by the build into `build/locale/`.

Lower layers (validation, store, imports, rules, publish checks) know no request, so they raise
or return a `Msg`: a `str` that reads as its English text (logs, the JSON API, old callers keep
working) and remembers its msgid and parameters, so the web layer renders it in the request's
language with `localize`. Spec titles (`title` / `titles`) are data and stay with the specs.
"""
from __future__ import annotations

import gettext as _gettext
from collections.abc import Callable
from pathlib import Path
from typing import Any

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
DOMAIN = "messages"

_translations: dict[str, _gettext.NullTranslations] = {}


class Msg(str):
    """A message to show a person: English as a string, any language through `render`."""

    msgid: str
    msgctxt: str | None
    params: dict[str, Any]

    def __new__(cls, msgid: str, *, msgctxt: str | None = None, **params: Any) -> Msg:
        self = super().__new__(cls, _format(msgid, params, "en"))
        self.msgid, self.msgctxt, self.params = msgid, msgctxt, params
        return self

    def render(self, lang: str) -> str:
        if self.msgctxt is not None:
            return pgettext(lang, self.msgctxt, self.msgid, **self.params)
        return gettext(lang, self.msgid, **self.params)

    def __reduce__(self) -> Any:
        return (_rebuild, (self.msgid, self.msgctxt, self.params))


class ByLang(dict):
    """A parameter given per language, such as a table's spec title: `ByLang(zh=…, en=…)`."""


class Joined(tuple):
    """Messages shown joined by `sep`, each in the message's language."""

    sep: str

    def __new__(cls, sep: str, parts: Any) -> Joined:
        self = super().__new__(cls, parts)
        self.sep = sep
        return self

    def __str__(self) -> str:
        return self.sep.join(map(str, self))


def joined(sep: str, parts: Any) -> Msg:
    """One message of several (`"; "`-joined reasons), still rendered in any language."""
    whole = "{parts}"
    return Msg(whole, parts=Joined(sep, parts))


def title_of(title: Callable[[str], str], lower: bool = True) -> ByLang:
    """A spec title (`tv.title`, `field.label`) as a message parameter; English in lower case
    inside a sentence ("no such pipeline")."""
    return ByLang({lang: title(lang).lower() if lower and lang == "en" else title(lang) for lang in LANGS})


def _rebuild(msgid: str, msgctxt: str | None, params: dict[str, Any]) -> Msg:
    return Msg(msgid, msgctxt=msgctxt, **params)


def pmsg(msgctxt: str, msgid: str, **params: Any) -> Msg:
    """A `Msg` whose English reads differently in Chinese by context (gettext's msgctxt)."""
    return Msg(msgid, msgctxt=msgctxt, **params)


def _format(text: str, params: dict[str, Any], lang: str) -> str:
    if not params:
        return text
    return text.format(**{k: _param(lang, v) for k, v in params.items()})


def _param(lang: str, value: Any) -> Any:
    if isinstance(value, ByLang | Joined | Msg):
        return localize(lang, value)
    return value


def load_translations(locale_dir: Path) -> None:
    """Read the compiled catalogues once at startup (a missing one falls back to the msgids)."""
    for lang in LANGS:
        _translations[lang] = _gettext.translation(DOMAIN, locale_dir, [lang], fallback=True)


def translations(lang: str) -> _gettext.NullTranslations:
    """The catalogue of `lang`; the project's build/ on first use in a process that loaded none."""
    if not _translations:
        from app.core.config import ROOT

        load_translations(ROOT / "build" / "locale")
    return _translations.get(lang) or _translations[DEFAULT_LANG]


def gettext(lang: str, msgid: str, **params: Any) -> str:
    """`msgid` in `lang`, its `{placeholders}` filled (a `Msg` parameter in the same language)."""
    text = msgid if lang == "en" else translations(lang).gettext(msgid)
    return _format(text, params, lang)


def ngettext(lang: str, singular: str, plural: str, n: int, **params: Any) -> str:
    text = (singular if n == 1 else plural) if lang == "en" else translations(lang).ngettext(singular, plural, n)
    return _format(text, {"n": n, **params}, lang)


def pgettext(lang: str, context: str, msgid: str, **params: Any) -> str:
    text = msgid if lang == "en" else translations(lang).pgettext(context, msgid)
    return _format(text, params, lang)


class Verbatim(list):
    """A list `localize` leaves as it is: the rows of a page, read from the database, hold values,
    never messages, and walking every cell of them cost a page more than its messages did."""


def localize(lang: str, value: Any) -> Any:
    """`value` with every `Msg` in it (also inside plain dicts, lists and tuples) in `lang`; other
    containers (a defaultdict, a dataclass, a row, a `Verbatim` list) are left as they are."""
    if isinstance(value, Msg):
        return value.render(lang)
    if isinstance(value, ByLang):
        return value.get(lang) or value.get(DEFAULT_LANG) or next(iter(value.values()), "")
    if isinstance(value, Joined):
        return value.sep.join(str(localize(lang, v)) for v in value)
    if type(value) is dict:
        return {k: localize(lang, v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(localize(lang, v) for v in value)
    return value
