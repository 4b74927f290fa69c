"""Structured logs, request ids, Prometheus metrics and security headers for every response.

Every log line is one JSON object carrying the request id of the request it belongs to; no
line ever holds a header, a cookie, a body or a query string (where secrets and search terms
live). Metrics work across uvicorn workers through prometheus_client's multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`, set by `pipeline-app serve`).
"""

from __future__ import annotations

import contextvars
import logging
import logging.handlers
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

HTTP_REQUESTS = Counter(
    "pipeline_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "pipeline_http_request_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_children: dict[tuple, Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, kept: the stock lookup validates and locks on every request."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
CSP_BYTES = CSP.encode()  # every HTML page, the API references too: their assets are served here


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message and `extra` fields."""

    RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    _second: tuple[int, str] = (-1, "")
    _encode = msgspec.json.Encoder(enc_hook=str).encode  # any other type: its str(), as json's default=str

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        line: dict[str, Any] = {
            "ts": f"{self._second[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
            "msg": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in self.RESERVED and k != "request_id"})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return self._encode(line).decode()


class RotatingJsonFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler that formats each record once (the stock `shouldRollover` formats it a
    second time to measure it, stats the file twice and seeks once per record): one access line
    per request is on every request's path. The size is counted here and re-read from the file
    every `RESYNC` records (other workers append to the same file)."""

    RESYNC = 64

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self.maxBytes > 0:
                self._count = getattr(self, "_count", 0) + 1
                if self._count % self.RESYNC == 1 or getattr(self, "_stream_of_size", None) is not self.stream:
                    self._size, self._stream_of_size = self.stream.tell(), self.stream
                if self._size + len(msg) >= self.maxBytes:
                    self.doRollover()
                    if self.stream is None:
                        self.stream = self._open()
                    self._size, self._stream_of_size = self.stream.tell(), self.stream
                self._size += len(msg)
            self.stream.write(msg)
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


_handlers: list[tuple[logging.Logger, logging.Handler]] = []


def configure_logging(data_dir: Path) -> None:
    """JSON lines to data/logs/{access,app}.log, rotated at 20 MB × 5; errors also to stderr.

    Calling it again (another app in the same process, as tests do) replaces the handlers."""
    for logger, old in _handlers:
        logger.removeHandler(old)
        old.close()
    _handlers.clear()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fmt = JsonFormatter()

    def handler(name: str) -> logging.Handler:
        h = RotatingJsonFileHandler(
            logs / name, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
        h.setFormatter(fmt)
        return h

    access = logging.getLogger("pipeline.access")
    access.setLevel(logging.INFO)
    access.propagate = False
    app_log = logging.getLogger("pipeline")
    app_log.setLevel(logging.INFO)
    pairs = [(access, handler("access.log")), (app_log, handler("app.log"))]
    if sys.stderr.isatty():  # in the foreground errors show on the terminal too; in the background
        err = logging.StreamHandler()  # (start.sh) stderr is a plain file nothing rotates: app.log has them
        err.setLevel(logging.ERROR)
        err.setFormatter(fmt)
        pairs.append((app_log, err))
    for logger, h in pairs:
        logger.addHandler(h)
        _handlers.append((logger, h))


def registry() -> CollectorRegistry | None:
    """The multiprocess registry when workers share a metrics folder, else the default one.
    Only if this process counts into that folder: prometheus_client picks in-memory or file-backed
    values when it is first imported, and `pipeline-app serve` with one worker imports it (the
    modules' commands) before it sets the folder; its /metrics was empty."""
    from prometheus_client import values

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and values.ValueClass is not values.MutexValue:
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return reg
    return None


def metrics_text() -> bytes:
    """Every metric in Prometheus' text format (of all workers, in multiprocess mode)."""
    reg = registry()
    return generate_latest(reg) if reg is not None else generate_latest()


HSTS = b"max-age=31536000; includeSubDomains"


def secure_cookie(header: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """Behind HTTPS every cookie we set (session, CSRF, language) is sent back over HTTPS only."""
    name, value = header
    if name.lower() == b"set-cookie" and b"; secure" not in value.lower():
        return name, value + b"; Secure"
    return header


def _route_of(scope: dict) -> str:
    handler = scope.get("route_handler")
    paths = getattr(handler, "paths", None)
    if scope.get("path_template"):
        return scope["path_template"]
    return sorted(paths)[0] if paths else "unmatched"


def observability_middleware(app: Any) -> Any:
    """Request id in and out, one access line and the metrics per request, security headers."""
    access = logging.getLogger("pipeline.access")

    async def middleware(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _ID_RE.match(incoming) else secrets.token_hex(8)
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status = 500
        path = scope.get("path", "")
        # uvicorn sets the scheme from X-Forwarded-Proto only for the proxies it trusts
        https = scope.get("scheme") == "https"

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-request-id", rid.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                ctype = dict(headers).get(b"content-type", b"")
                if ctype.startswith(b"text/html"):
                    extra += [(b"content-security-policy", CSP_BYTES), (b"x-frame-options", b"DENY")]
                if not path.startswith("/static/") and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                if https:
                    extra.append((b"strict-transport-security", HSTS))
                    headers = [secure_cookie(h) for h in headers]
                message = {**message, "headers": headers + [h for h in extra if h[0] not in names]}
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            method = scope.get("method", "")
            child(HTTP_REQUESTS, method, route, str(status)).inc()
            child(HTTP_LATENCY, method, route).observe(elapsed)
            principal = (scope.get("state") or {}).get("principal")
            client = scope.get("client") or ("", 0)
            access.info(
                "request",
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "client_ip": client[0],
                    "user": getattr(principal, "username", None),
                },
            )
            REQUEST_ID.reset(token)

    return middleware
