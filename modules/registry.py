"""Business actions and record-page extras that modules add to the generic CRUD runtime.

A module lists its actions in its CRUD view (`record_toolbar`) and implements them in
`modules/<module>/actions.py` as `ACTIONS = {"<table>": {"<action>": coroutine}}` and optionally
`EXTRAS = {"<table>": coroutine}` rendering extra HTML for the record page.
Business rules checked on every save (form, API, import) live in `modules/<module>/rules.py` as
`RULES = {"<table>": async (conn, tv, row, row_id) -> {field: message}}`, run inside the write's
transaction with the row as it will be after the write.
"""
from __future__ import annotations

import importlib
from typing import Any

from litestar import Request

from app.catalog import TableView


def _module_attr(module: str, name: str, file: str = "actions") -> dict:
    try:
        mod = importlib.import_module(f"modules.{module}.{file}")
    except ModuleNotFoundError as exc:
        if exc.name != f"modules.{module}.{file}":
            raise
        return {}
    return getattr(mod, name, {})


def action_handlers(tv: TableView) -> list:
    from app.actions import make_action_handlers

    impls = _module_attr(tv.module, "ACTIONS").get(tv.name, {})
    return make_action_handlers(tv, impls)


def module_pages(module: str) -> list:
    """Extra pages a module serves beside its tables (`PAGES` in modules/<module>/pages.py)."""
    return list(_module_attr(module, "PAGES", "pages") or [])


async def record_extras(request: Request, tv: TableView, row: dict[str, Any]) -> list[str]:
    extra = _module_attr(tv.module, "EXTRAS").get(tv.name)
    return await extra(request, tv, row) if extra else []


async def check_rules(conn: Any, tv: TableView, row: dict[str, Any], row_id: str | None) -> dict[str, str]:
    rule = _module_attr(tv.module, "RULES", "rules").get(tv.name)
    return await rule(conn, tv, row, row_id) if rule else {}
