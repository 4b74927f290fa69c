"""Permission paths and grant sets: which request path a grant opens, with no database.

A grant is a permission path of the RBAC database (`/pipeline_core/**`, `/t/{id}/edit`); a role
set's grants compile once into a `GrantSet` that every request asks. `permission_path` and
`app_paths` turn the routes an app serves into the paths it registers.
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


class GrantSet:
    """A role set's grants compiled once: exact paths in a set, patterns in a list."""

    __slots__ = ("exact", "patterns")

    def __init__(self, grants: Iterable[str]):
        self.exact: set[tuple[str, ...]] = set()
        self.patterns: list[tuple[tuple[str, ...], bool]] = []
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
        segments = _segments(path)
        if segments in self.exact:
            return True
        tmpl = _template_segments(segments, template)
        return any(_match(p, segments, tmpl) for p in self.patterns)


@lru_cache(maxsize=256)
def grant_set(grants: tuple[str, ...]) -> GrantSet:
    return GrantSet(grants)


_PATH_PARAM = re.compile(r"\{(\w+):path\}$")
_TYPED_PARAM = re.compile(r"\{(\w+):[^}]*\}")


def permission_path(path: str) -> str:
    """`/t/{id:str}/edit` → `/t/{id}/edit`; a trailing `{file:path}` parameter → `**`."""
    return _TYPED_PARAM.sub(r"{\1}", _PATH_PARAM.sub("**", path))


def app_paths(app: Any) -> list[str]:
    """The permission paths of every route the Litestar `app` serves (from `app.routes`)."""
    paths = set()
    for route in app.routes:
        path = permission_path(route.path)
        handlers = getattr(route, "route_handlers", None) or [getattr(route, "route_handler", None)]
        if any(getattr(h, "is_mount", False) for h in handlers) and not path.endswith("**"):
            path = path.rstrip("/") + "/**"
        paths.add(path)
    return sorted(paths)
