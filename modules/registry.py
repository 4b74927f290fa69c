"""Business actions and record-page extras that modules add to the generic CRUD runtime.

A module lists its actions in its CRUD view (`record_toolbar`) and implements them in
`modules/<module>/actions.py` as `ACTIONS = {"<table>": {"<action>": coroutine}}` and optionally
`EXTRAS = {"<table>": coroutine}` rendering extra HTML for the record page.
"""
from __future__ import annotations

import importlib
from typing import Any

from litestar import Request

from app.catalog import TableView


def _module_attr(module: str, name: str) -> dict:
    try:
        mod = importlib.import_module(f"modules.{module}.actions")
    except ModuleNotFoundError as exc:
        if exc.name != f"modules.{module}.actions":
            raise
        return {}
    return getattr(mod, name, {})


def action_handlers(tv: TableView) -> list:
    from app.actions import make_action_handlers

    impls = _module_attr(tv.module, "ACTIONS").get(tv.name, {})
    return make_action_handlers(tv, impls)


async def record_extras(request: Request, tv: TableView, row: dict[str, Any]) -> list[str]:
    extra = _module_attr(tv.module, "EXTRAS").get(tv.name)
    return await extra(request, tv, row) if extra else []
