"""One JSON error shape everywhere: {"error": {"status", "code", "message", "fields"}}.

That is the answer for API clients; a browser asking for a page gets the same error as a page in
the app's layout (`app.web.error_pages`). `error_reply` chooses between them."""
from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example  # noqa: F401 - re-exported for handlers' examples

from app.core.db import is_unavailable
from app.core.i18n import Msg
from app.core.retry import Busy
from app.ops.calm import log_failure
from app.web.error_pages import error_page, wants_html

ERROR_LOG = logging.getLogger("pipeline.error")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid", 429: "rate_limited", 500: "internal_error",
         503: "unavailable"}


def error_response(status: int, message: str, fields: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None, code: str | None = None) -> Response:
    body = {"status": status, "code": code or CODES.get(status, "error"), "message": message}
    if fields:
        body["fields"] = fields
    return Response({"error": body}, status_code=status, headers=headers)


def error_reply(request: Request, status: int, message: str, fields: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, code: str | None = None) -> Response:
    """The error as a page for a browser, in the one JSON shape for everyone else."""
    if wants_html(request):
        return error_page(request, status, message, fields, headers)
    return error_response(status, message, fields, headers, code)


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    """Litestar's own errors (bad JSON, wrong types, the router's 404 and 405) in our shape, never
    a traceback."""
    fields = {}
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                fields[str(item.get("key") or "body")] = str(item.get("message", "invalid"))
    message = str(exc.detail)
    if isinstance(exc, NotFoundException) and message == "Not Found":
        message = Msg("no such page or record")
    elif isinstance(exc, MethodNotAllowedException):
        message = Msg("{method} is not allowed here", method=request.method)
    return error_reply(request, exc.status_code, message, fields, headers=getattr(exc, "headers", None))


def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Anything else: 400/503 for what we know (and nothing was written), else a logged 500 that
    shows its request id, never the exception."""
    if isinstance(exc, RecursionError):  # a body nested thousands deep: the decoder gave up
        return error_reply(request, 400, Msg("the request body is nested too deeply"), code="bad_request")
    if isinstance(exc, Busy):  # retries ran out on a conflict: nothing was written
        return error_reply(request, 503, str(exc), headers={"Retry-After": str(exc.retry_after)}, code="busy")
    log_failure(ERROR_LOG, exc, "unhandled error on %s %s", request.method, request.url.path)
    if is_unavailable(exc):
        return error_reply(request, 503, Msg("the database is unavailable; try again shortly"),
                           headers={"Retry-After": "5"}, code="unavailable")
    return error_reply(request, 500, Msg("internal error"))


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    status: int
    code: Annotated[str, msgspec.Meta(examples=["invalid"])]
    message: str
    fields: dict[str, str] = msgspec.field(default_factory=dict)
    limit: Annotated[str | None, msgspec.Meta(examples=["pipeline.daily"],
                                              description="The limit a 429 hit (distributor API).")] = None


class ErrorBody(msgspec.Struct):
    """The one error shape, as the OpenAPI document shows it."""

    error: ErrorDetail


ERROR_TEXT = {400: "Bad request: malformed JSON, wrong parameter", 401: "Not logged in / no valid key",
              403: "No grant for this path, or CSRF token missing", 404: "Not found", 409: "Conflict",
              413: "Too large", 422: "Invalid fields (see `fields`)", 429: "Limit reached", 503: "Database unavailable"}


def documented_errors(*statuses: int, text: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """OpenAPI `responses` for the error statuses a route can answer, all in the one shape
    (`text`: descriptions of this API's own, over the generic ones)."""
    text = {**ERROR_TEXT, **(text or {})}
    return {s: ResponseSpec(data_container=ErrorBody, description=text.get(s, "Error")) for s in statuses}


OPERATOR_ERRORS = documented_errors(400, 401, 403, 404, 409, 422, 503)
