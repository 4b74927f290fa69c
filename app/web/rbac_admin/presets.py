"""Role presets: the usual grant sets of one module, applied to a role in one audited transaction.

- viewer: the module's pages that only read (lists, records, exports, its GET-only pages). No JSON
  API: its list path also creates and its record path also writes, so a read-only API grant does
  not exist yet.
- operator: every path the module serves, one by one: pages, actions (forms that write) and the
  JSON API. A path the module adds later is not included until the preset is applied again.
- admin: the module's two wildcards, `/<module>/**` and `/api/<module>/**`: everything, now and later.

A preset adds grants and never revokes: applying viewer to an operator role changes nothing.
"""
from __future__ import annotations

from collections.abc import Mapping

from app.core.i18n import Msg
from app.web.rbac_admin.grid import kind_of, module_of

PRESETS = {
    "viewer": Msg("viewer"),
    "operator": Msg("operator"),
    "admin": Msg("admin"),
}
KINDS_OF = {"viewer": ("page",), "operator": ("page", "action", "api")}


def preset_paths(preset: str, module: str, served: Mapping[str, frozenset[str]]) -> list[str]:
    """The permission paths preset `preset` grants for `module`, from the paths the app serves."""
    if preset == "admin":
        return [f"/{module}/**", f"/api/{module}/**"]
    kinds = KINDS_OF[preset]
    return sorted(p for p, methods in served.items() if module_of(p) == module and kind_of(p, methods) in kinds)
