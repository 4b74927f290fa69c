"""The Litestar application: every route comes from the compiled manifest plus a few app pages."""
from __future__ import annotations

import gc
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from litestar import Litestar, Request, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.core.catalog import Catalog, load_catalog
from app.core.config import ROOT, Settings, load_settings
from app.core.context import AppContext
from app.core.hooks import hook
from app.crud.rows import CrudError
from app.web.auth import safe_next
from app.web.errors import http_exception_handler, internal_error_handler
from app.core.i18n import Msg, load_translations
from app.web.ui import LANG_COOKIE, LANGS, register_globals
from app.web.views.common import crud_error_handler
from app.web.views.list import rows_template_of


@get("/lang/{code:str}", include_in_schema=False)
async def switch_language(request: Request, code: FromPath[str]) -> Redirect:
    """Remember the UI language in a cookie and go back where the user was."""
    referer = urlsplit(request.headers.get("referer") or "/")
    same_site = not referer.netloc or referer.netloc == request.url.netloc
    back = safe_next(urlunsplit(("", "", referer.path, referer.query, "")) if same_site else "/")
    response = Redirect(path=back)
    if code in LANGS:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, httponly=True, samesite="lax")
    return response


def csrf_secret(settings: Settings) -> str:
    """Derived from the key secret so every worker and machine signs CSRF tokens alike."""
    return hashlib.sha256(("csrf:" + settings.key_secret).encode()).hexdigest()


def freeze_startup_heap() -> None:
    """Last startup step: what startup built (routes, table metadata, templates, pools) lives as
    long as the process, so take it out of the garbage collector's view. Otherwise every full
    collection walks all of it: under load that was a 50 ms pause every second or two, the whole
    p99 of the distributor API. Shutdown thaws it (`gc.unfreeze`), so a process that makes and
    stops many apps (the tests) can still collect them."""
    gc.collect()
    gc.freeze()


def require_rows_templates(catalog: Catalog, build_dir: Path) -> None:
    """Refuse to start on a build/ without a table's compiled list rows (nothing compiles them
    while serving): an old build/ would otherwise fail on the first list page instead."""
    missing = [f"{tv.module}/{tv.name}" for tv in catalog.tables.values()
               if not (build_dir / "templates" / rows_template_of(tv)).is_file()]
    if missing:
        raise RuntimeError(f"{build_dir} has no compiled list rows for {', '.join(missing)}: run ./build.sh")


def create_app(settings: Settings | None = None) -> Litestar:
    """The one place that assembles the app: the manifest's routes, the app's own pages, and
    the plugins the manifest's modules register (their `plugins` hook)."""
    from app.ops import observability
    from app.web import auth, health, home, openapi_ui, rbac_admin
    from app.web.views import routes

    settings = settings or load_settings()
    catalog = load_catalog(settings.build_dir)
    load_translations(settings.build_dir / "locale")
    plugins = [p for module in catalog.modules for p in hook(module["name"], "plugins")]
    keyed = tuple(p.keyed_prefix for p in plugins if getattr(p, "keyed_prefix", None))
    ctx = AppContext(settings, catalog, keyed_prefixes=keyed)
    require_rows_templates(catalog, settings.build_dir)
    template_config = TemplateConfig(
        directory=[ROOT / "templates", settings.build_dir / "forms", settings.build_dir / "templates"],
        engine=JinjaTemplateEngine,
        engine_callback=lambda engine: register_globals(engine.engine),
    )
    app = Litestar(
        route_handlers=[
            *health.handlers, *auth.handlers, *home.handlers, *rbac_admin.handlers, switch_language,
            *routes.handlers(catalog),
            create_static_files_router(path="/static", directories=[ROOT / "static"], include_in_schema=False),
            openapi_ui.assets_router(),
        ],
        plugins=plugins,
        state=State({"ctx": ctx}),
        on_startup=[lambda: observability.configure_logging(settings.data_dir), ctx.start],
        on_shutdown=[ctx.stop],
        middleware=[auth.auth_middleware],
        csrf_config=CSRFConfig(secret=csrf_secret(settings), cookie_httponly=False, cookie_samesite="lax",
                               exclude=[f"^{re.escape(prefix)}" for prefix in keyed]),
        template_config=template_config,
        type_encoders={Msg: str},  # JSON answers carry a message's English (the API's language)
        openapi_config=OpenAPIConfig(title="Pipeline-App", version="1.0.0", path="/schema",
                                     render_plugins=[openapi_ui.LocalSwaggerPlugin()]),
        exception_handlers={CrudError: crud_error_handler, HTTPException: http_exception_handler,
                            **auth.exception_handlers, Exception: internal_error_handler},
    )
    # after the plugins' own startup and shutdown steps, whatever they appended
    app.on_startup.append(freeze_startup_heap)
    app.on_shutdown.append(gc.unfreeze)
    # Outside Litestar's exception handling and router: 404, 405 and refusals raised by middleware
    # get the request id and security headers too, and are logged and counted with their real status.
    app.asgi_handler = observability.observability_middleware(app.asgi_handler)
    return app
