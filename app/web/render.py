"""Render a page with what every page shows: the user, the menu they may open, the language."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from app.core.context import ctx_of
from app.web.permits import may
from app.core.i18n import Msg, localize
from app.web.ui import lang_of

ADMIN_PAGES = (("/rbac/grants", Msg("Grants")), ("/rbac/users", Msg("Users and roles")))


def menu_for(request: Request) -> list[dict[str, Any]]:
    """Modules and tables, keeping only the list pages this user may open (`may`, as every button)."""
    lang = lang_of(request)
    menu = []
    for mod in ctx_of(request).catalog.modules:
        if not mod.get("menu", True):
            continue
        items = []
        for name in mod["tables"]:
            tv = ctx_of(request).catalog.tables[name]
            if tv.view.get("menu", True) and not tv.view.get("internal") and may(request, tv.base):
                items.append({"href": tv.base, "title": tv.title(lang)})
        if items:
            menu.append({**mod, "tables": items})
    admin = [
        {"href": href, "title": title.render(lang)} for href, title in ADMIN_PAGES if may(request, href)
    ]
    if admin:
        access = Msg("Access")
        menu.append({"name": "rbac", "title": access.render("zh"), "titles": {"en": access.render("en")},
                     "tables": admin})
    return menu


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Template:
    from app.auth.principal import principal_of

    context.setdefault("principal", principal_of(request))
    context.setdefault("menu", menu_for(request))
    context.setdefault("lang", lang_of(request))
    from app.web.notices import with_notice

    context = localize(context["lang"], context)  # the lower layers' messages in the page's language
    page = Template(template_name=template, context=context, status_code=status_code)
    return with_notice(request, page, context)
