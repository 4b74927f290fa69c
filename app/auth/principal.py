"""Who is asking: the principal of a request, resolved from its session, with its grants.

The web layer's middleware resolves it once per request and keeps it in the ASGI scope's state;
everything else reads it from there (`principal_of`), so no layer below the web needs Litestar.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.auth import rbac
from app.auth.sessions import lookup_session
from app.core.clock import utcnow
from app.core.context import AppContext

PRINCIPAL_KEY = "principal"  # where the middleware keeps it in scope["state"]
ANONYMOUS_ROLES = frozenset({"any", "anonymous"})


@dataclass(frozen=True)
class Principal:
    """Who is asking, with every permission path their roles hold."""

    user_id: str | None
    username: str | None
    roles: frozenset[str]
    grants: tuple[str, ...]

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None

    def allows(self, path: str, template: str | None = None) -> bool:
        """May this principal open `path`? (`template`: the route's path template, if known.)"""
        return rbac.grant_set(self.grants).allows(path, template)

    def may_write(self, permission: str) -> bool:
        """May this principal use a write that names its own permission path (a handler's
        `opt["permission"]`, such as `/rbac/grants/edit`)? The path is its own template: a
        `{id}` grant (`/rbac/users/{id}`) never opens the literal `/rbac/users/edit`."""
        return self.allows(permission, permission)

    def missing(self, grants: Iterable[str]) -> list[str]:
        """The grants of `grants` this principal does not hold (`GrantSet.covers`), sorted: what
        they may not hand to a role, or hold over a user they would act on."""
        held = rbac.grant_set(self.grants)
        return sorted({g for g in grants if not held.covers(g)})


NOBODY = Principal(None, None, ANONYMOUS_ROLES, ())


def path_allowed(grants: Iterable[str], path: str, template: str | None = None) -> bool:
    """Does any of `grants` open `path`? (`Principal.allows` for a bare list of grants.)"""
    return rbac.grant_set(tuple(grants)).allows(path, template)


def principal_of(request: Any) -> Principal:
    """The principal the middleware resolved; anonymous with no grants when there is none."""
    return (request.scope.get("state") or {}).get(PRINCIPAL_KEY) or NOBODY


async def resolve_principal(ctx: AppContext, token: str | None) -> Principal:
    """Session token (or None) → principal. Without a token only the cached anonymous grants
    are looked up; with one, the cached session (`session_cache_seconds`), then the cached user
    and grants (`rbac_cache_seconds`)."""
    ttl = ctx.settings.rbac_cache_seconds
    if token:
        session = await lookup_session(ctx.db, token, utcnow(), ctx.settings.session_cache_seconds)
        if session is not None:
            info = await rbac.user_info(ctx.rbac_db, session.user_id, ttl)
            if info is not None and info.active:
                roles = frozenset({"any", "logined", *info.roles})
                return Principal(session.user_id, info.username, roles,
                                 await rbac.grants_for(ctx.rbac_db, roles, ttl))
    return Principal(None, None, ANONYMOUS_ROLES, await rbac.grants_for(ctx.rbac_db, ANONYMOUS_ROLES, ttl))
