"""Build-time list rows: one Jinja template per table with the `<tbody>` rows of its list page.

A list page used to render each cell through a loop over the columns and a `show()` call that
asked, per cell, whether the field has choices, a snapshot, a code lookup, money or a time. The
spec answers those questions once, so the build writes each column's cell as the one formatting
its field needs (`build/templates/rows/<module>/<table>.html`); only the values are left to the
request. The text written here is Jinja source; nothing here imports Jinja or the app.

What a cell shows, in the order the old `show()` asked (a value that fails one test falls to the
next): nothing for NULL, the choice's label, the row's snapshot of the looked-up text, the looked-up
text (`texts`, the page's code texts), money and unit prices (filters `money`, `unit_price`),
times in the business zone (filter `when`), else the value as it is.
"""
from __future__ import annotations

from pathlib import Path

from generators.spec import Field, TableSpec

HEADER = "{#- compiled by generators/rows.py from the spec of %s: edit the generator, not this file -#}\n"


def lit(text: str) -> str:
    """A Jinja string literal of `text`: Python's repr, with braces and % escaped so a label can
    never close the expression it sits in."""
    return repr(text).replace("{", "\\x7b").replace("}", "\\x7d").replace("%", "\\x25")


def item(name: str) -> str:
    return f"row[{lit(name)}]"


def label_text(zh: str, en: str) -> str:
    """A label in the page's language, chosen by `lang` only when the two differ."""
    return f"{{{{ {lit(zh)} }}}}" if zh == en else f"{{{{ {lit(en)} if lang == 'en' else {lit(zh)} }}}}"


def formatted(spec: TableSpec, f: Field) -> str:
    """The cell of a value that is no choice nor looked-up text: by the field's kind."""
    currency = item("currency") if "currency" in spec.field_map else "none"
    if f.type == "decimal" and f.format == "money":
        return f"{{{{ v | money({currency}) }}}}"
    if f.type == "decimal" and f.format == "unit_price":
        return f"{{{{ v | unit_price({currency}, {f.dec if f.dec is not None else 'none'}) }}}}"
    if f.is_datetime:
        return "{{ v | when }}"
    return "{{ v }}"


def cell(spec: TableSpec, f: Field) -> str:
    """One column's cell as straight-line Jinja: only the tests its field can need."""
    snapshot = {c.field: c.snapshot for c in spec.codes if c.snapshot}.get(f.name)
    coded = any(c.field == f.name for c in spec.codes)
    branches = [("v is none", "")]
    branches += [(f"s == {lit(c.value)}", label_text(c.label("zh"), c.label("en"))) for c in f.choices]
    if snapshot:
        branches.append((item(snapshot), f"{{{{ {item(snapshot)} }}}}"))
    if coded:
        branches.append((f"{lit(f.name)} in texts", f"{{{{ texts[{lit(f.name)}].get(s, s) }}}}"))
    head = f"{{% set v = {item(f.name)} %}}" + ("{% set s = v | string %}" if f.choices or coded else "")
    if len(branches) == 1:
        return f"{head}{{% if v is not none %}}{formatted(spec, f)}{{% endif %}}"
    tests = "".join(f"{{% {'el' if i else ''}if {test} %}}{body}" for i, (test, body) in enumerate(branches))
    return f"{head}{tests}{{% else %}}{formatted(spec, f)}{{% endif %}}"


def rows_template(spec: TableSpec, view: dict) -> str:
    """The `<tbody>` rows of a table's list page: the bulk checkbox, then each list column, the first
    one a link to the record. list.html sets `select_label` and says when there are no rows."""
    pk = item(spec.primary[0])
    lines = [HEADER % spec.name, "{% set base = tv.base %}{% for row in result.rows %}\n    <tr>\n",
             f'    {{% if can_bulk %}}<td><input type="checkbox" name="ids" value="{{{{ {pk} }}}}" form="bulk"'
             f' aria-label="{{{{ select_label }}}} {{{{ {pk} }}}}"></td>{{% endif %}}\n']
    for i, name in enumerate(view["list_fields"]):
        f = spec.field(name)
        shown = cell(spec, f)
        if i == 0:
            shown = f'<a href="{{{{ base }}}}/{{{{ {pk} }}}}">{shown}</a>'
        lines.append(f'      <td class="t-{f.type}">{shown}</td>\n')
    lines.append("    </tr>\n{% endfor %}\n")
    return "".join(lines)


def write_rows(specs: list[TableSpec], tables: dict[str, dict], out: Path) -> None:
    """build/templates/rows/<module>/<table>.html for every table of the manifest (`tables`)."""
    for spec in specs:
        entry = tables[spec.name]
        folder = out / "templates" / "rows" / entry["module"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{spec.name}.html").write_text(rows_template(spec, entry["view"]), encoding="utf-8")
