"""What a person reads on a page, and the text of the other language in it: the one check behind
the in-process walk of every page (tests/unit/test_one_language.py) and the browser walk at phone
and desktop widths (tests/e2e/test_browser_phone.py)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from babel.messages.pofile import read_po
from helpers import ROOT

HAN = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3001-\u3011]+")
PLACEHOLDER = re.compile(r"\{[^}]*\}")
VISIBLE_ATTRS = ("title", "placeholder", "aria-label", "alt", "data-confirm", "data-picker-more",
                 "data-picker-none", "data-picker-denied")
# English that is the same in a Chinese UI: names, formats, units
NEUTRAL = {"api", "json", "csv", "xlsx", "id", "ok", "utc", "url", "http", "https", "sql", "ip", "h", "ms"}


class _Visible(HTMLParser):
    """Text a person reads: text nodes outside script/style, and the visible attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "code", "pre") or dict(attrs).get("lang") and tag != "html":
            self._skip += 1  # code, and text marked as another language (the language switch)
            self._skipping.append(tag)
        for name, value in attrs:
            if value and (name in VISIBLE_ATTRS or name == "value" and dict(attrs).get("type") == "submit"):
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible(html: str, data: list[str]) -> list[str]:
    parser = _Visible()
    parser.feed(html)
    out = []
    for part in parser.parts:
        for value in data:
            if value in part:
                part = re.sub(r"(?<![A-Za-z])" + re.escape(value) + r"(?![A-Za-z])", " ", part)
        out.append(part)
    return out


def catalogue_phrases() -> list[re.Pattern]:
    """The catalogue's English msgids, as the runs of words a Chinese page must not show."""
    with (ROOT / "app/locale/zh/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f)
    phrases = set()
    for message in catalog:
        if not message.id or not isinstance(message.id, str):
            continue
        for piece in PLACEHOLDER.split(message.id):
            words = re.findall(r"[A-Za-z][A-Za-z'-]+", piece)
            if words and any(w.lower() not in NEUTRAL for w in words) and len(" ".join(words)) >= 4:
                phrases.add(" ".join(words))
    return [re.compile(r"(?<![A-Za-z])" + r"\W+".join(map(re.escape, p.split())) + r"(?![A-Za-z])")
            for p in sorted(phrases, key=len, reverse=True)]


def spec_texts(catalog) -> set[str]:
    """Spec titles and comments: data of the specs, shown as the spec gives them."""
    texts = set()
    for tv in catalog.tables.values():
        spec = tv.spec
        texts.update([spec.title or "", *dict(spec.titles).values()])
        for f in spec.fields:
            texts.update([f.title or "", *dict(f.titles).values(), *(f.comments or "").split(" / ")])
            for c in f.choices or ():
                texts.update([c.title or "", *dict(c.titles).values()])
    for mod in catalog.modules:
        texts.update([mod.get("title") or "", *(mod.get("titles") or {}).values()])
    return {t for t in texts if t.strip()}


def other_language(html: str, lang: str, values: list[str], english: list[re.Pattern]) -> list[str]:
    """The visible texts of `html` that belong to the other language than `lang`: Chinese on an
    English page; on a Chinese page a catalogue phrase or a run of three English words. `values`
    (data, spec titles) are taken out first: they read the same in both."""
    found = []
    for text in visible(html, values):
        if lang == "en" and HAN.search(text):
            found.append(f"{HAN.findall(text)} in {text[:120]!r}")
        elif lang == "zh" and (any(p.search(text) for p in english)
                               or re.search(r"[A-Za-z]+(?:[ ,;:'-]+[A-Za-z]+){2,}", text)):
            found.append(repr(text[:120]))
    return found
