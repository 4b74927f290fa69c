"""Build-time form templates: one Jinja template per table with its widgets, labels and limits.

The build renders `templates/form_fields.j2` (delimiters `<% %>`/`<< >>`) into
`build/forms/<table>.form.html`, a runtime template that only fills in values and errors.
"""
from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from generators.spec import Field, TableSpec

INPUT_TYPES = {"date": "date", "time": "time", "datetime": "datetime-local", "timestamp": "datetime-local"}


def widget(f: Field, code_table: str | None, confidential: bool) -> str:
    """Which widget a field gets: data, like everything else here."""
    if confidential or f.widget == "password":
        return "password"
    if f.choices:
        return "choice"
    if code_table:
        return "code"
    if f.type == "text" or f.widget in ("textarea", "json"):
        return "textarea"
    if f.type in INPUT_TYPES:
        return INPUT_TYPES[f.type]
    if f.is_number:
        return "number"
    if f.format in ("email", "url"):
        return f.format
    return "text"


HAN = re.compile(r"[\u4e00-\u9fff]")


def help_titles(comments: str | None) -> dict | None:
    """A field's help (the spec's `comments`) as a title per language: the specs write it
    "中文 / English", and a page shows one language only; a comment in one language shows as is."""
    if not comments:
        return None
    zh, sep, en = comments.partition(" / ")
    if not sep or not HAN.search(zh) or HAN.search(en):
        return {"title": comments, "titles": {}}
    return {"title": zh.strip(), "titles": {"en": en.strip()}}


def step(f: Field) -> str:
    if f.type == "decimal":
        return "1" if not f.dec else "0." + "0" * (f.dec - 1) + "1"
    return "1" if f.is_int else "any"


def write_forms(root: Path, specs: list[TableSpec], views: dict[str, dict], out: Path) -> None:
    env = Environment(loader=FileSystemLoader(root / "templates"), block_start_string="<%",
                      block_end_string="%>", variable_start_string="<<", variable_end_string=">>",
                      comment_start_string="<#", comment_end_string="#>", undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters["pyrepr"] = repr
    template = env.get_template("form_fields.j2")
    (out / "forms").mkdir(parents=True, exist_ok=True)
    for spec in specs:
        view = views.get(spec.name)
        if view is None or view["internal"] or view["noedit"]:
            continue
        fields = []
        for name in view["form_fields"]:
            f = spec.field(name)
            code = spec.code_for(name)
            fields.append({
                "f": f, "en": f.label("en"), "widget": widget(f, code.table if code else None,
                                                             name in view["confidential"]),
                "required": not f.nullable and f.default is None, "step": step(f),
                "choices": [(c.value, c.title, c.label("en")) for c in f.choices],
                "help": help_titles(f.comments),
            })
        text = template.render(table=spec.name, fields=fields)
        (out / "forms" / f"{spec.name}.form.html").write_text(text, encoding="utf-8")
