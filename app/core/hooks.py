"""The hooks through which a module plugs into the generic runtime (docs/modules.md).

A module is a folder `modules/<module>/`; each hook is one attribute of one file in it, looked
up by name when the app starts. Nothing here imports a module by name, so the generic layers
never depend on one, and a module without a hook simply has none. `HOOKS` lists them:
rules checked inside every write's transaction, the record toolbar's business actions, extra
blocks on a record page, extra pages, Litestar plugins (routers, startup, error handlers) and
CLI commands.

`cli` (`modules/<module>/cli.py`, `COMMANDS`): `{name: (help, configure)}`, one top-level
command `pipeline-app <name>` each. `pipeline-app` makes the command's `argparse` parser with
`help` and calls `configure(parser)`, which adds its arguments or subcommands and sets
`func` (`parser.set_defaults(func=...)`): `func(args)` runs the command and returns its exit
status. Keep the module's imports inside `func`, so that `pipeline-app --help` stays quick.
"""
from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from app.core.catalog import TableView

HOOKS: dict[str, tuple[str, str, type]] = {
    "rules": ("rules", "RULES", dict),
    "deletes": ("rules", "DELETE_RULES", dict),
    "actions": ("actions", "ACTIONS", dict),
    "extras": ("actions", "EXTRAS", dict),
    "pages": ("pages", "PAGES", dict),
    "plugins": ("plugin", "PLUGINS", list),
    "cli": ("cli", "COMMANDS", dict),
}
"""Hook name → (file of the module, attribute, what the attribute is):

- `rules`: `rules.RULES`, {table: async (conn, tv, row, row_id) → {field: message}}, checked inside
  every write's transaction;
- `deletes`: `rules.DELETE_RULES`, {table: async (conn, tv, row) → [reason]}, why a row must not be
  deleted (app/crud/dependents.py adds what the specs' codes say);
- `actions`: `actions.ACTIONS`, {table: {action: async (request, tv, row_id, data) → result}}, the
  record toolbar's business actions (the view file lists them, the manifest routes them);
- `extras`: `actions.EXTRAS`, {table: async (request, tv, row) → [html]}, blocks on a record page;
- `pages`: `pages.PAGES`, {handler name: async handler (a plain function taking `request`, not a
  Litestar route)}; the module's module.json declares each page as `{"path", "methods",
  "handler"}`, the compiler makes it a manifest route of kind `page`, and the web layer routes it
  to the handler of that name, so the path lives in one place;
- `plugins`: `plugin.PLUGINS`, [Litestar plugin], for routers, startup steps and error handlers;
- `cli`: `cli.COMMANDS`, {name: click command}, the module's commands of the `pipeline-app` CLI.
"""


@cache
def hook(module: str, name: str) -> Any:
    """What `module` registers for hook `name`: a dict or list, empty when it has none."""
    file, attr, kind = HOOKS[name]
    try:
        mod = importlib.import_module(f"modules.{module}.{file}")
    except ModuleNotFoundError as exc:
        if exc.name != f"modules.{module}.{file}":
            raise
        return kind()
    return getattr(mod, attr, None) or kind()


async def record_extras(request: Any, tv: TableView, row: dict[str, Any]) -> list[str]:
    extra = hook(tv.module, "extras").get(tv.name)
    return await extra(request, tv, row) if extra else []


async def check_rules(conn: Any, tv: TableView, row: dict[str, Any], row_id: str | None) -> dict[str, str]:
    rule = hook(tv.module, "rules").get(tv.name)
    return await rule(conn, tv, row, row_id) if rule else {}


async def check_delete(conn: Any, tv: TableView, row: dict[str, Any]) -> list[str]:
    rule = hook(tv.module, "deletes").get(tv.name)
    return await rule(conn, tv, row) if rule else []
