"""One JSON error shape everywhere: {"error": {"status", "code", "message", "fields"}}."""
from __future__ import annotations

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid", 429: "rate_limited", 500: "internal_error",
         503: "unavailable"}


def error_response(status: int, message: str, fields: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None, code: str | None = None) -> Response:
    body = {"status": status, "code": code or CODES.get(status, "error"), "message": message}
    if fields:
        body["fields"] = fields
    return Response({"error": body}, status_code=status, headers=headers)


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    """Litestar's own errors (bad JSON, wrong types, 404 routes) in our shape, never a traceback."""
    fields = {}
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                fields[str(item.get("key") or "body")] = str(item.get("message", "invalid"))
    return error_response(exc.status_code, str(exc.detail), fields, headers=getattr(exc, "headers", None))


def internal_error_handler(request: Request, exc: Exception) -> Response:
    import logging

    logging.getLogger("pipeline.error").exception("unhandled error on %s %s", request.method, request.url.path)
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError, DBAPIError, ConnectionError, OSError, TimeoutError)):
        return error_response(503, "the database is unavailable; try again shortly",
                              headers={"Retry-After": "5"})
    return error_response(500, "internal error")


def exception_handlers() -> dict:
    from app.auth import exception_handlers as auth_handlers
    from app.crud import CrudError
    from app.crud_routes import crud_error_handler

    return {CrudError: crud_error_handler, HTTPException: http_exception_handler, **auth_handlers,
            Exception: internal_error_handler}
