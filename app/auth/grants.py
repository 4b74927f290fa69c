"""Permission paths and grant sets: which request path a grant opens, with no database.

A grant is a permission path of the RBAC database (`/pipeline_core/**`, `/t/{id}/edit`); a role
set's grants compile once into a `GrantSet` that every request asks. `permission_path` and
`app_paths` turn the routes an app serves into the paths it registers.

Writes that share their address with a page name their own permission path (the handler's
`opt["permission"]`, e.g. POST /rbac/grants → `/rbac/grants/edit`), so opening a page never grants
its form; the rows stay path-only, as the ecosystem writes them. `covers` says whether one grant
holds everything another opens: nobody grants what they do not hold.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any


def _segments(path: str) -> tuple[str, ...]:
    path = path.strip("/")
    return tuple(path.split("/")) if path else ()


def _is_param(segment: str) -> bool:
    return len(segment) > 2 and segment[0] == "{" and segment[-1] == "}"


@lru_cache(maxsize=4096)
def _compile(grant: str) -> tuple[tuple[str, ...], bool] | None:
    """A grant → (its segments, whether it ends in a wildcard); None for a grant that is no path."""
    grant = (grant or "").strip()
    if not grant.startswith("/"):
        return None
    wildcard = grant.endswith(("**", "%"))
    if wildcard:
        grant = grant[:-2] if grant.endswith("**") else grant[:-1]
    return _segments(grant), wildcard


def _match(compiled: tuple[tuple[str, ...], bool], path: tuple[str, ...],
           template: tuple[str, ...] | None) -> bool:
    segments, wildcard = compiled
    if len(path) < len(segments) or (not wildcard and len(path) != len(segments)):
        return False
    for i, seg in enumerate(segments):
        if _is_param(seg):
            # `{id}` stands for one non-empty segment, and only where the route itself takes a
            # parameter: a grant of `/t/{id}` (view a record) does not open `/t/new`.
            if not path[i] or (template is not None and not _is_param(template[i])):
                return False
        elif seg != path[i]:
            return False
    return True


def _template_segments(path: tuple[str, ...], template: str | None) -> tuple[str, ...] | None:
    if not template:
        return None
    segments = _segments(template)
    return segments if len(segments) == len(path) else None


def path_matches(grant: str, path: str, template: str | None = None) -> bool:
    """Does permission path `grant` open request path `path`?

    - equal paths match (trailing slashes aside);
    - a grant ending in `**` or `%` opens its prefix and every path under it, segment-aligned:
      `/pipeline_core/**` opens `/pipeline_core` and `/pipeline_core/pipelines/abc/edit`, not
      `/pipeline_corex`;
    - a `{name}` segment of a grant matches exactly one non-empty segment of the path (and, when
      the route's `template` is given, only where the route has a parameter).
    Anything else does not match: default deny.
    """
    compiled = _compile(grant)
    if compiled is None:
        return False
    segments = _segments(path)
    return _match(compiled, segments, _template_segments(segments, template))


def _covers(held: tuple[tuple[str, ...], bool], wanted: tuple[tuple[str, ...], bool]) -> bool:
    """Does compiled grant `held` open every path compiled grant `wanted` opens? A wildcard is held
    only by a wildcard of the same or a shorter prefix; a `{name}` segment holds (and is held by)
    only a `{name}`: it opens a route's parameter, never a literal route such as `/t/new`."""
    (hs, hw), (ws, ww) = held, wanted
    if (ww and not hw) or len(hs) > len(ws) or (not hw and len(hs) != len(ws)):
        return False
    return all(_is_param(w) if _is_param(h) else h == w for h, w in zip(hs, ws, strict=False))


def covers(held: str, wanted: str) -> bool:
    """Does permission path `held` open everything `wanted` opens (`/pipeline_core/**` holds
    `/pipeline_core/pipelines/{id}`; `/t/{id}` does not hold `/t/new`, nor `/t/**`)?"""
    h, w = _compile(held), _compile(wanted)
    return h is not None and w is not None and _covers(h, w)


class GrantSet:
    """A role set's grants compiled once: exact paths in a set, patterns in a list, and the
    answers already given (a page asks the same dozen paths for its menu and buttons on every
    request: each pattern walk is done once per path, not once per request)."""

    __slots__ = ("answers", "exact", "patterns")
    MAX_ANSWERS = 4096

    def __init__(self, grants: Iterable[str]):
        self.exact: set[tuple[str, ...]] = set()
        self.patterns: list[tuple[tuple[str, ...], bool]] = []
        self.answers: dict[tuple[str, str | None], bool] = {}
        for grant in grants:
            compiled = _compile(grant)
            if compiled is None:
                continue
            segments, wildcard = compiled
            if wildcard or any(_is_param(s) for s in segments):
                self.patterns.append(compiled)
            else:
                self.exact.add(segments)

    def allows(self, path: str, template: str | None = None) -> bool:
        answer = self.answers.get((path, template))
        if answer is None:
            segments = _segments(path)
            tmpl = _template_segments(segments, template)
            answer = segments in self.exact or any(_match(p, segments, tmpl) for p in self.patterns)
            if len(self.answers) >= self.MAX_ANSWERS:  # record paths carry ids: keep it bounded
                self.answers.clear()
            self.answers[(path, template)] = answer
        return answer

    def covers(self, grant: str) -> bool:
        """Does this set hold everything `grant` opens (may its holder grant it to others)?"""
        wanted = _compile(grant)
        if wanted is None:
            return False
        if wanted[0] in self.exact and not wanted[1]:
            return True
        return any(_covers(held, wanted) for held in self.patterns)


@lru_cache(maxsize=256)
def grant_set(grants: tuple[str, ...]) -> GrantSet:
    return GrantSet(grants)


_PATH_PARAM = re.compile(r"\{(\w+):path\}$")
_TYPED_PARAM = re.compile(r"\{(\w+):[^}]*\}")


def permission_path(path: str) -> str:
    """`/t/{id:str}/edit` → `/t/{id}/edit`; a trailing `{file:path}` parameter → `**`."""
    return _TYPED_PARAM.sub(r"{\1}", _PATH_PARAM.sub("**", path))


PERMISSION_OPT = "permission"  # a handler's `opt` key naming the permission path it needs
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def handler_permission(handler: Any) -> str | None:
    """The permission path a route handler names for itself (`opt["permission"]`), if any."""
    return (getattr(handler, "opt", None) or {}).get(PERMISSION_OPT)


def app_path_methods(app: Any) -> dict[str, frozenset[str]]:
    """Every permission path the Litestar `app` serves (from `app.routes`), with the HTTP methods
    it opens: a route's own path, and each path a handler names for itself."""
    out: dict[str, set[str]] = {}
    for route in app.routes:
        path = permission_path(route.path)
        handlers = getattr(route, "route_handlers", None) or [getattr(route, "route_handler", None)]
        if any(getattr(h, "is_mount", False) for h in handlers) and not path.endswith("**"):
            path = path.rstrip("/") + "/**"
        out.setdefault(path, set())
        for h in handlers:
            methods = set(getattr(h, "http_methods", None) or {"GET"})
            out.setdefault(handler_permission(h) or path, set()).update(methods)
    return {path: frozenset(methods) for path, methods in out.items()}


def app_paths(app: Any) -> list[str]:
    """The permission paths of every route the Litestar `app` serves (from `app.routes`)."""
    return sorted(app_path_methods(app))
