"""The distributor API's own documentation, readable without an operator login and offline:
`GET /api/dist/v1/openapi.json` (the distributor endpoints only, with examples and the error
shape) and `GET /api/dist/v1/docs` (a getting-started guide with copy-paste curl commands for
this server, then the reference rendered from that document by the packaged Swagger UI).

Why a document of its own: the app's `/schema` is for operators (behind their login, and it holds
the whole admin API); a distributor needs exactly the calls their key opens. It is cut from the
app's OpenAPI document (so it cannot drift from the handlers): the paths under the API's prefix,
the component schemas they reference (transitively), the key's security schemes.
"""
from __future__ import annotations

import copy
from typing import Any

import msgspec

from litestar import Request, Response, Router, get
from litestar.response import Template

from app.web.openapi_ui import head_tags, swagger_div
from modules.pipeline_dist.api import DIST_ERROR_TEXT

PREFIX = "/api/dist/v1"
SCHEMES = ("DistributorKey", "DistributorApiKey")
CALL_EXAMPLE = {"call_id": "019a9f2c6b1e4d2a9c0b7e3f5a6d8c10", "pipeline": "ocr-invoice",
                "request_id": "order-20261123-0001", "status": "running", "version_no": 3, "units": 1,
                "unit_price": "0.020000", "amount": "0.020000", "currency": "CNY",
                "started_at": "2026-11-23T08:00:00Z", "lease_expires_at": "2026-11-23T08:10:00Z",
                "finished_at": None, "latency_ms": None,
                "quotas": [{"limit": "link.daily", "max": 1000, "used": 1, "remaining": 999, "reset": 57600}]}
ERROR_EXAMPLES = {
    400: {"status": 400, "code": "bad_request", "message": "Validation failed for POST /api/dist/v1/...",
          "fields": {"request_id": "Expected `str`"}},
    401: {"status": 401, "code": "unauthorized", "message": "invalid or missing API key"},
    404: {"status": 404, "code": "not_found", "message": "pipeline not found"},
    409: {"status": 409, "code": "conflict", "message": "this request_id was already used for another pipeline"},
    429: {"status": 429, "code": "rate_limited", "message": "link.daily quota exhausted (1000)",
          "limit": "link.daily"},
}


def _refs(node: Any, found: set[str]) -> None:
    """Every component schema `node` references, into `found`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _with_examples(paths: dict[str, Any]) -> None:
    """Response examples: a call for the admission and finish, the error shape for every error."""
    for path, item in paths.items():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for status, response in op.get("responses", {}).items():
                media = response.get("content", {}).get("application/json")
                if media is None:
                    continue
                if int(status) in ERROR_EXAMPLES:
                    media["example"] = {"error": ERROR_EXAMPLES[int(status)]}
                elif path.endswith(("/calls", "/finish")):
                    finished = {**CALL_EXAMPLE, "status": "succeeded", "finished_at": "2026-11-23T08:00:02Z",
                                "latency_ms": 1830, "quotas": None}
                    media["example"] = CALL_EXAMPLE if path.endswith("/calls") else finished


def distributor_document(full: dict[str, Any], server: str) -> dict[str, Any]:
    """The distributor part of the app's OpenAPI document `full`, for the server at `server`."""
    paths = {p: copy.deepcopy(item) for p, item in full.get("paths", {}).items() if p.startswith(PREFIX + "/")}
    _with_examples(paths)
    components = full.get("components", {})
    schemas, wanted, todo = components.get("schemas", {}), set(), set()
    _refs(paths, todo)
    while todo:
        name = todo.pop()
        if name in wanted or name not in schemas:
            continue
        wanted.add(name)
        _refs(schemas[name], todo)
    errors = "".join(f"\n- **{status}**: {text}" for status, text in sorted(DIST_ERROR_TEXT.items()))
    return {
        "openapi": full.get("openapi", "3.1.0"),
        "info": {"title": "Pipeline-App distributor API", "version": "1.0.0", "description": (
            "Metered calls to the pipelines offered to you, with your prices, quotas, usage and monthly "
            "statements. Authenticate with your key in `Authorization: Bearer pdk_…` (or `X-API-Key`), never in "
            "the URL. Every error has one shape: `{\"error\": {\"status\", \"code\", \"message\", \"fields\", "
            "\"limit\"}}`." + errors)},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {"schemas": {n: schemas[n] for n in sorted(wanted)},
                       "securitySchemes": {n: s for n, s in components.get("securitySchemes", {}).items()
                                           if n in SCHEMES}},
        "security": [{n: []} for n in SCHEMES],
        "tags": [{"name": "Distributor API", "description": "Everything your key opens."}],
    }


def _server(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> Response:
    doc = distributor_document(request.app.openapi_schema.to_schema(), _server(request))
    return Response(msgspec.json.encode(doc), media_type="application/json")  # examples may be Structs


@get("/docs", include_in_schema=False)
async def docs_page(request: Request) -> Template:
    """The guide (curl commands against this server) and the reference, all assets local."""
    server = _server(request)
    return Template(template_name="dist_docs.html", context={
        "server": server, "base": server + PREFIX, "head": head_tags(),
        "reference": swagger_div(PREFIX + "/openapi.json", try_it=False)})


handlers = [Router(PREFIX, route_handlers=[openapi_json, docs_page])]
