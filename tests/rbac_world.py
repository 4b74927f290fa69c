"""The app for the RBAC admin tests: the app database and a separate RBAC database of the same
kind (SQLite, MariaDB), every path registered, an admin, and helpers to add users and grants.

Import the `world` fixture (and `world_settings`, which a test overrides with
`@pytest.mark.parametrize("world_settings", [{...}])` to change settings)."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from conftest import Operator, app_settings, make_database, prepare_databases
from litestar.testing import AsyncTestClient
from sqlalchemy import select

ADMIN_PW = "admin-Passw0rd-1"


@dataclasses.dataclass
class World:
    app: Any
    client: AsyncTestClient
    settings: Any
    rbac_url: str
    app_url: str

    @property
    def op(self) -> Operator:
        return Operator(self.client)

    def engine(self, which: str = "rbac"):
        from app.core.db import make_engine

        return make_engine(self.rbac_url if which == "rbac" else self.app_url)

    async def user(self, name: str, password: str, role: str) -> str:
        from app.auth import rbac

        engine = self.engine()
        try:
            user_id, _ = await rbac.add_user(engine, name, password, role)
        finally:
            await engine.dispose()
        return user_id

    async def grant(self, role: str, *paths: str) -> None:
        """Give role `role` (made if missing) these paths, making their permission rows."""
        from app.auth import rbac

        engine = self.engine()
        try:
            await rbac.register_paths(engine, [], {role: list(paths)}, dry_run=False)
        finally:
            await engine.dispose()
        rbac.invalidate()

    async def rows(self, stmt, which: str = "rbac") -> list:
        engine = self.engine(which)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(stmt)).all()
        finally:
            await engine.dispose()

    async def ids(self, role: str, path: str | None = None) -> tuple[str, str | None]:
        """(role id, permission id) of role key `role` and permission `path`."""
        from app.auth import rbac

        r, p = rbac.table("role"), rbac.table("permission")
        orgtypeid, name = rbac.split_role_key(role)
        role_id = (await self.rows(select(r.c.id).where(r.c.orgtypeid == orgtypeid, r.c.name == name)))[0][0]
        perm_id = (await self.rows(select(p.c.id).where(p.c.path == path)))[0][0] if path else None
        return role_id, perm_id

    async def user_id(self, name: str) -> str:
        from app.auth import rbac

        u = rbac.table("users")
        return (await self.rows(select(u.c.id).where(u.c.username == name)))[0][0]

    async def links(self, role: str) -> set[str]:
        """The paths granted directly to role key `role`."""
        from app.auth import rbac

        rp, p, r = rbac.table("rolepermission"), rbac.table("permission"), rbac.table("role")
        orgtypeid, name = rbac.split_role_key(role)
        stmt = (select(p.c.path).select_from(rp.join(p, p.c.id == rp.c.permid).join(r, r.c.id == rp.c.roleid))
                .where(r.c.orgtypeid == orgtypeid, r.c.name == name))
        return {row[0] for row in await self.rows(stmt)}

    async def audit(self, table: str) -> list:
        t = self.app.state.ctx.catalog.tables["audit_log"].table
        return await self.rows(select(t.c.action, t.c.row_id, t.c.after_json, t.c.username)
                               .where(t.c.table_name == table).order_by(t.c.created_at), which="app")

    async def as_user(self, name: str, password: str) -> Operator:
        """The test client, now logged in as `name`."""
        self.client.cookies.clear()
        op = Operator(self.client)
        r = await op.login(name, password)
        assert r.status_code == 303, (name, r.status_code, r.text[:300])
        return op

    def other_client(self) -> AsyncTestClient:
        return AsyncTestClient(app=self.app)


@pytest.fixture
def world_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
async def world(db_url, tmp_path, world_settings):
    from app.auth import rbac
    from app.core.db import make_engine
    from app.web.app import create_app

    kind = "sqlite" if db_url.startswith("sqlite") else "mariadb"
    rbac_url, drop = make_database(kind, tmp_path)
    rbac.invalidate()
    await prepare_databases(db_url, rbac_url)
    settings = dataclasses.replace(app_settings(db_url, rbac_url, tmp_path), **world_settings)
    app = create_app(settings)
    engine = make_engine(rbac_url)
    await rbac.register_paths(engine, rbac.app_paths(app), settings.rbac_defaults, dry_run=False)
    await rbac.add_user(engine, "admin", ADMIN_PW, "pipeline.admin")
    await engine.dispose()
    async with AsyncTestClient(app=app) as client:
        yield World(app, client, settings, rbac_url, db_url)
    rbac.invalidate()
    drop()
