"""The roles × paths grid as data: which group a path belongs to, and how a role holds it.

A path's group is its module (the first segment, or the second under /api/) and its kind: a page
(GET only), an action (a form or call that writes), the JSON API, a wildcard grant, or a path the
app does not serve (another app's, on a shared database). A role holds a path directly (a
`rolepermission` row), through a wildcard or `{id}` grant of its own that covers it
(`/pipeline_core/**` → `/pipeline_core/pipelines`), through a grant of one of its wildcard forms
(`pipeline.*`, `*.admin`), or not at all. No Litestar here: the pages and the tests share it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.auth import rbac
from app.auth.grants import WRITE_METHODS, covers
from app.core.i18n import Msg, pmsg

KINDS = ("page", "action", "api", "wildcard", "other")
KIND_TITLES = {
    "page": pmsg("rbac", "Pages"),
    "action": Msg("Actions"),
    "api": Msg("JSON API"),
    "wildcard": Msg("Wildcard grants"),
    "other": Msg("Not served by this app"),
}


def module_of(path: str) -> str:
    """`/pipeline_core/pipelines` and `/api/pipeline_core/pipelines` → `pipeline_core`."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return ""
    return parts[1] if parts[0] == "api" and len(parts) > 1 else parts[0]


def kind_of(path: str, methods: frozenset[str] | None) -> str:
    """One of KINDS; `methods` are the HTTP methods the app serves at `path` (None: not served)."""
    if path.endswith(("**", "%")):
        return "wildcard"
    if methods is None:
        return "other"
    if path.startswith("/api/"):
        return "api"
    return "action" if methods & WRITE_METHODS else "page"


@dataclass(frozen=True)
class Row:
    """One path of the grid."""

    id: str
    path: str
    module: str
    kind: str


def rows_of(paths: Iterable[tuple[str, str]], served: Mapping[str, frozenset[str]],
            modules: Iterable[str]) -> list[Row]:
    """(id, path) pairs → grid rows, ordered by module (the app's modules first, in their order),
    kind (KINDS order) and path."""
    order = {m: i for i, m in enumerate(modules)}
    rows = [Row(pid, path, module_of(path), kind_of(path, served.get(path))) for pid, path in paths if path]
    return sorted(rows, key=lambda r: (r.module not in order, order.get(r.module, 0), r.module,
                                       KINDS.index(r.kind), r.path))


@dataclass(frozen=True)
class Holding:
    """How a role holds a path: `direct`, `via` (then `through` says by which grant) or `none`."""

    state: str
    through: str = ""


NONE = Holding("none")


class RoleGrants:
    """One role's grants, direct and by its wildcard forms, to tell how it holds any path."""

    def __init__(self, key: str, direct: Iterable[str], by_key: Mapping[str, Iterable[str]]):
        self.direct = frozenset(direct)
        forms = sorted(rbac.held_keys({key}) - {key})
        self.sources = [(g, "") for g in sorted(self.direct)]
        self.sources += [(g, form) for form in forms for g in sorted(by_key.get(form, ()))]

    def holding(self, path: str) -> Holding:
        if path in self.direct:
            return Holding("direct")
        for grant, form in self.sources:
            if covers(grant, path):
                return Holding("via", f"{form}: {grant}" if form else grant)
        return NONE


def groups(rows: list[Row]) -> list[tuple[str, str, list[Row]]]:
    """Consecutive rows of one (module, kind), as (module, kind, rows)."""
    out: list[tuple[str, str, list[Row]]] = []
    for row in rows:
        if out and out[-1][:2] == (row.module, row.kind):
            out[-1][2].append(row)
        else:
            out.append((row.module, row.kind, [row]))
    return out
