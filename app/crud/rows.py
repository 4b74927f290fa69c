"""What a row is on its way in and out of the CRUD runtime: who writes it, how it becomes JSON,
and the one error every layer above answers in its own way (a page, a JSON error, a CLI line).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from app.core.catalog import TableView


class CrudError(Exception):
    """A request the runtime refuses: status, a message, and problems by field."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or {}


@dataclass
class Actor:
    """Who is writing: recorded in created_by and the audit trail."""

    user_id: str | None
    username: str | None
    client_ip: str | None = None


_AS_IS = frozenset({str, int, bool, float, type(None)})


def jsonable(value: Any) -> Any:
    """Exact JSON: money stays a decimal string, times are ISO 8601. (Most cells are text or
    numbers: they pass on the first test, since a list page asks this of each of its cells.)"""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


def public(tv: TableView, row: Any) -> dict[str, Any]:
    """A row as the outside may see it: confidential fields never leave the server."""
    hidden = tv.view["confidential"]
    return {k: jsonable(v) for k, v in (row._mapping if hasattr(row, "_mapping") else row).items()
            if k not in hidden}
