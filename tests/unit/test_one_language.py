"""One language at a time (issue 17): every page an admin can open, and the pages of refusals,
validation errors, business rules and publish checks, read in Chinese carry no English UI text,
and in English no Chinese, apart from data (row values, spec titles) that is the same in both.

The walk runs once over a demo catalog: the pages of the manifest (list, record, new, edit,
delete, import), the RBAC admin, the module pages, 403, 404, and the answers of failed saves.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app.cli.demo import fill_demo
from app.core.context import AppContext
from app.auth import rbac
from app.core.db import make_engine
from helpers import ADMIN_PASSWORD, ROOT, csrf_of
from language_check import HAN, PLACEHOLDER, catalogue_phrases, other_language, spec_texts, visible

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
FILE = "__file__"  # a form's upload (CSV text)

async def _pages(admin) -> list[tuple[str, str, str, dict | None]]:
    """(label, method, path, form) of every page and failed save the walk reads."""
    catalog = admin.ctx.catalog
    pages: list[tuple[str, str, str, dict | None]] = [("home", "GET", "/", None), ("404", "GET", "/no/such/page", None),
                                                      ("rbac grants", "GET", "/rbac/grants", None),
                                                      ("rbac users", "GET", "/rbac/users", None)]
    ids: dict[str, str] = {}
    for route in catalog.routes:
        if route["kind"] == "api_list":
            rows = (await admin.api("GET", route["path"] + "?rows=1")).json()["rows"]
            if rows:
                ids[route["table"]] = str(rows[0][catalog.tables[route["table"]].pk])
    for route in catalog.routes:
        if "GET" not in route["methods"] or route["path"].startswith("/api/") or route["kind"] in (
                "export_csv", "export_xlsx", "import_template"):
            continue
        path = route["path"]
        if "{id}" in path:
            if route.get("table") not in ids:
                continue
            path = path.replace("{id}", ids[route["table"]])
        pages.append((route["kind"], "GET", path, None))
    users = (await admin.client.get("/rbac/users")).text
    user = re.search(r'href="(/rbac/users/[^"?]+)"', users)
    if user:
        pages.append(("rbac user", "GET", user.group(1), None))
    pages += [
        ("validation", "POST", "/pipeline_core/pipelines/new", {"code": "", "name": ""}),
        ("validation types", "POST", "/pipeline_ops/pipeline_capacity/new",
         {"pipeline_id": "nope", "daily_quota": "x", "monthly_quota": "1.5"}),
        ("business rule", "POST", "/pipeline_ops/pipeline_pricing/new",
         {"pipeline_id": ids["pipelines"], "billing_unit": "call", "price_mode": "unit", "unit_price": "",
          "currency": "CNY", "effective_from": "2020-01-01T00:00:00", "status": "active"}),
        ("price overlap", "POST", "/pipeline_ops/pipeline_pricing/new",
         {"pipeline_id": ids["pipelines"], "billing_unit": "call", "price_mode": "unit", "unit_price": "0.01",
          "currency": "CNY", "effective_from": "2020-01-01T00:00:00", "status": "active"}),
        ("403 csrf", "POST", "/pipeline_core/pipelines/new", None),
        ("delete refused", "POST", f"/pipeline_dist/distributors/{ids['distributors']}/delete", {}),
        ("import errors", "POST", "/pipeline_ops/pipeline_capacity/import",
         {"mode": "preview", FILE: "pipeline_id,daily_quota\nnope,abc\n"}),
        ("import columns", "POST", "/pipeline_ops/pipeline_capacity/import",
         {"mode": "preview", FILE: "pipeline_id,bogus\nnope,1\n"}),
    ]
    draft = await admin.api("POST", "/api/pipeline_core/pipelines",
                            json={"code": "lonely", "name": "Lonely", "status": "draft"})
    assert draft.status_code == 201, draft.text
    pages.append(("publish check", "POST", f"/pipeline_core/pipelines/{draft.json()['id']}/publish", {}))
    return pages


async def _fetch(admin, method: str, path: str, form: dict | None) -> tuple[int, str]:
    headers = {"accept": "text/html"}
    if method == "GET":
        r = await admin.client.get(path, headers=headers)
    elif form is None:  # no CSRF token: the refusal page
        r = await admin.client.post(path, data={"code": "x"}, headers=headers)
    else:
        page = await admin.client.get(path.rsplit("/", 1)[0] if path.endswith("/publish") else path, headers=headers)
        data = {k: v for k, v in form.items() if k != FILE}
        files = {"file": ("capacity.csv", form[FILE].encode(), "text/csv")} if FILE in form else None
        r = await admin.client.post(path, data={**data, "_csrf_token": csrf_of(page.text)}, files=files,
                                    headers=headers, follow_redirects=True)
    return r.status_code, r.text


@SQLITE
async def test_every_page_speaks_one_language(admin):
    ctx = AppContext(admin.ctx.settings, admin.ctx.catalog)
    await ctx.start()
    try:
        await fill_demo(ctx, days=3)
    finally:
        await ctx.stop()
    data: set[str] = spec_texts(admin.ctx.catalog)
    for route in admin.ctx.catalog.routes:
        if route["kind"] == "api_list":
            for row in (await admin.api("GET", route["path"] + "?rows=200")).json()["rows"]:
                data.update(str(v) for v in row.values() if isinstance(v, str) and v.strip())
    data.add("admin")
    values = sorted(data, key=len, reverse=True)
    pages = await _pages(admin)
    english = catalogue_phrases()
    problems: list[str] = []
    seen_status: dict[str, int] = {}
    for lang in ("zh", "en"):
        admin.client.cookies.set("lang", lang)
        for label, method, path, form in pages:
            status, html = await _fetch(admin, method, path, form)
            seen_status[label] = status
            problems += [f"{lang} {label} {path}: {p}" for p in other_language(html, lang, values, english)]
    await admin.logout()
    engine = make_engine(admin.ctx.settings.rbac_database)
    await rbac.add_user(engine, "guest", ADMIN_PASSWORD, "demo.guest")  # a role with no grant
    await engine.dispose()
    for lang in ("zh", "en"):
        admin.client.cookies.set("lang", lang)
        login = await admin.login("admin", "wrong-password")
        await admin.login("guest", ADMIN_PASSWORD)
        refused = await admin.client.get("/pipeline_core/pipelines", headers={"accept": "text/html"})
        assert refused.status_code == 403
        await admin.logout()
        for text in visible(login.text + refused.text, values):
            if lang == "en" and HAN.search(text) or lang == "zh" and any(p.search(text) for p in english):
                problems.append(f"{lang} login or 403: {text[:120]!r}")
    assert seen_status["404"] == 404 and seen_status["403 csrf"] == 403
    assert seen_status["validation"] == 422 and seen_status["business rule"] == 422
    assert seen_status["publish check"] == 422 and seen_status["price overlap"] == 422
    assert seen_status["delete refused"] == 409 and seen_status["import errors"] == 422
    assert not problems, f"{len(problems)} strings of the other language:\n" + "\n".join(sorted(set(problems))[:80])


def test_the_catalogue_translates_every_message():
    """Every msgid has its Chinese (an empty msgstr would show English in the Chinese UI), with the
    same {placeholders} (a lost one would drop a value, a new one would fail the page)."""
    with Path(ROOT / "app/locale/zh/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f)
    missing = [m.id for m in catalog if m.id and not m.string]
    assert not missing
    names = lambda text: set(PLACEHOLDER.findall(text))  # noqa: E731
    assert [m.id for m in catalog if m.id and names(m.id) != names(m.string)] == []
