"""The Litestar application: every route comes from the compiled manifest plus a few app pages."""
from __future__ import annotations

import gc
import hashlib

from litestar import Litestar, Request, get
from litestar.config.csrf import CSRFConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.config import ROOT, Settings, load_settings
from app.catalog import load_catalog
from app.context import AppContext
from app.errors import exception_handlers
from app.ui import LANG_COOKIE, LANGS, register_globals


@get("/lang/{code:str}", include_in_schema=False)
async def switch_language(request: Request, code: FromPath[str]) -> Redirect:
    """Remember the UI language in a cookie and go back where the user was."""
    back = request.headers.get("referer") or "/"
    if not back.startswith(("/", str(request.base_url))):
        back = "/"
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


def create_app(settings: Settings | None = None) -> Litestar:
    from app import auth, crud_routes, dist_api, health, home, observability, rbac_admin

    settings = settings or load_settings()
    catalog = load_catalog(settings.build_dir)
    ctx = AppContext(settings, catalog)
    template_config = TemplateConfig(
        directory=[ROOT / "templates", settings.build_dir / "forms"],
        engine=JinjaTemplateEngine,
        engine_callback=lambda engine: register_globals(engine.engine),
    )
    return Litestar(
        route_handlers=[
            *health.handlers, *auth.handlers, *home.handlers, *rbac_admin.handlers, switch_language,
            observability.metrics,
            *dist_api.handlers,
            *crud_routes.handlers(catalog),
            create_static_files_router(path="/static", directories=[ROOT / "static"], include_in_schema=False),
        ],
        state=State({"ctx": ctx}),
        on_startup=[lambda: observability.configure_logging(settings.data_dir), ctx.start, dist_api.startup,
                    freeze_startup_heap],
        on_shutdown=[dist_api.shutdown, ctx.stop, gc.unfreeze],
        middleware=[observability.observability_middleware, auth.auth_middleware],
        csrf_config=CSRFConfig(secret=csrf_secret(settings), cookie_httponly=False, cookie_samesite="lax",
                               exclude=["/api/dist/"]),
        template_config=template_config,
        openapi_config=OpenAPIConfig(title="Pipeline-App", version="1.0.0", path="/schema"),
        exception_handlers=exception_handlers(),
    )
