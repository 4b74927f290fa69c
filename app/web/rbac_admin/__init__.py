"""The RBAC admin pages: the roles × paths grid (`grant_pages`) and users (`user_pages`).

Every change is one click or form (a CSRF-protected POST that needs its own permission path), one
transaction in the RBAC database that first checks the actor holds what the change hands out, an
audit row in the app database, a dropped grant cache (a revoked path stops working on this worker
at once, on the others within `rbac_cache_seconds`) and a message on the page it returns to.
docs/rbac-admin.md describes the pages and their permission paths.
"""
from __future__ import annotations

from app.web.rbac_admin import grant_pages, user_pages

handlers = [*grant_pages.handlers, *user_pages.handlers]
