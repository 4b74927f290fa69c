"""API reference pages that work offline: Swagger UI from a packaged bundle, served by the app.

Why: the stock render plugins load Swagger UI's scripts, styles and fonts from public CDNs, so on
a network without them the page is blank, and they start it with an inline script, which the
strict CSP (app.ops.observability) forbids. Here the assets come from the `swagger-ui-bundle-v2`
package (Swagger UI 5, which reads OpenAPI 3.1; pinned in requirements.txt) under
`/static/swagger-ui/`, and a static script (`static/swagger-init.js`) starts it from data
attributes, so the pages need nothing but 'self'.
Used by the operators' `/schema` and by modules' own API docs (the distributor API's).
"""
from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/static/swagger-ui"


def assets_router() -> Any:
    """The bundle's files at ASSETS (under /static, which every role may read)."""
    return create_static_files_router(path=ASSETS, directories=[swagger_ui_path], include_in_schema=False,
                                      name="swagger_ui_assets")


def head_tags() -> str:
    """The stylesheet and scripts a page with a Swagger UI needs, all local."""
    return (f'<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">'
            f'<script src="{ASSETS}/swagger-ui-bundle.js" defer></script>'
            '<script src="/static/swagger-init.js" defer></script>')


def swagger_div(spec_url: str, *, csrf_header: str | None = None, try_it: bool = True) -> str:
    """The element `swagger-init.js` fills from `spec_url` (CSRF header: sent on writes, for /schema)."""
    attrs = f' data-spec="{escape(spec_url)}" data-try-it="{"true" if try_it else "false"}"'
    if csrf_header:
        attrs += f' data-csrf-header="{escape(csrf_header)}"'
    return f'<div id="swagger-ui"{attrs}></div>'


class LocalSwaggerPlugin(OpenAPIRenderPlugin):
    """Litestar's OpenAPI UI plugin for /schema, on the local assets and without inline script."""

    def __init__(self, path: str | list[str] = ("/", "/swagger"), **kwargs: Any):
        super().__init__(path=list(path), favicon="", style="", **kwargs)

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        csrf = request.app.csrf_config
        spec = f"{request.app.openapi_config.path}/openapi.json"
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">{head_tags()}</head>'
                f'<body>{swagger_div(spec, csrf_header=csrf.header_name if csrf else None)}</body></html>').encode()

