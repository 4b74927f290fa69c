"""Issue 13, point 6, users: create, reset a password, enable and disable, organisation, roles.
Each action is one RBAC transaction, one audit row and a message in the UI language."""
from __future__ import annotations

import json

import pytest
from conftest import Operator
from rbac_world import ADMIN_PW, world, world_settings  # noqa: F401 - fixtures
from sqlalchemy import insert, select

from app.auth import rbac

PW = "carol-Passw0rd-1"
NEW_PW = "carol-Passw0rd-2"


async def _user_row(world, name: str):
    u = rbac.table("users")
    rows = await world.rows(select(u.c.id, u.c.password, u.c.user_status, u.c.orgid).where(u.c.username == name))
    return rows[0] if rows else None


async def follow(op, response) -> str:
    """The page a 303 leads to (with the message it shows)."""
    assert response.status_code == 303, (response.status_code, response.text[:300])
    page = await op.client.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


async def test_create_a_user_who_then_logs_in(world):
    op = await world.as_user("admin", ADMIN_PW)
    await world.grant("lib.reader", "/pipeline_core/pipelines")
    reader, _ = await world.ids("lib.reader")
    r = await op.form("/rbac/users/new", {"username": "carol", "password": PW, "password2": PW, "role_id": reader})
    assert r.headers["location"] == "/rbac/users?q=carol"
    text = await follow(op, r)
    assert "已创建用户 carol" in text and 'class="flash ok"' in text
    assert "已创建用户" not in (await op.client.get("/rbac/users")).text, "a message shows once"
    row = await _user_row(world, "carol")
    assert row.user_status == "0" and row.orgid == world.settings.rbac_default_orgid
    assert row.password.startswith("$argon2") and PW not in row.password
    [audit] = await world.audit("users")
    assert audit.action == "user_create" and audit.row_id == row.id and audit.username == "admin"
    assert json.loads(audit.after_json) == {"user": "carol", "org": "pipeline-app", "role": "lib.reader"}
    assert PW not in audit.after_json

    # taken names (as the database compares them), bad passwords: nothing written, an error shown
    for data, said in (({"username": "carol", "password": PW, "password2": PW}, "已被使用"),
                       ({"username": "dave", "password": "short", "password2": "short"}, "8–128"),
                       ({"username": "dave", "password": PW, "password2": PW + "x"}, "不一致"),
                       ({"username": "da ve", "password": PW, "password2": PW}, "空白")):
        text = await follow(op, await op.form("/rbac/users/new", data))
        assert said in text and 'class="flash error"' in text, said
    assert await _user_row(world, "dave") is None and len(await world.audit("users")) == 1

    carol = await world.as_user("carol", PW)
    assert (await carol.client.get("/pipeline_core/pipelines")).status_code == 200
    assert (await carol.client.get("/pipeline_core/pipelines/new")).status_code == 403


@pytest.mark.parametrize("world_settings", [{"rbac_password_scheme": "ecosystem"}])
async def test_a_user_made_here_on_a_shared_database_has_the_ecosystem_format(world):
    from app.auth.passwords import ecosystem_encode

    op = await world.as_user("admin", ADMIN_PW)
    await follow(op, await op.form("/rbac/users/new", {"username": "eco", "password": PW, "password2": PW}))
    row = await _user_row(world, "eco")
    assert row.password == ecosystem_encode(PW, world.settings.rbac_password_key)
    op.client.cookies.set("lang", "en")
    text = await follow(op, await op.form(f"/rbac/users/{row.id}/password", {"password": NEW_PW, "password2": NEW_PW}))
    assert "Password of eco reset" in text
    assert (await _user_row(world, "eco")).password == ecosystem_encode(NEW_PW, world.settings.rbac_password_key)
    await world.as_user("eco", NEW_PW)


async def me(world) -> int:
    return (await world.client.get("/me", headers={"accept": "application/json"})).status_code


async def carol_logged_in(world) -> tuple[str, str]:
    """carol (ops.viewer) and the session cookie of her login: (user id, session token)."""
    carol_id = await world.user("carol", PW, "ops.viewer")
    await world.as_user("carol", PW)
    assert await me(world) == 200
    return carol_id, world.client.cookies["pa_session"]


def as_carol_again(world, token: str) -> None:
    """The test client is carol's browser again (her old session cookie)."""
    world.client.cookies.clear()
    world.client.cookies.set("pa_session", token)


async def test_reset_password_ends_the_users_sessions(world):
    carol_id, token = await carol_logged_in(world)
    op = await world.as_user("admin", ADMIN_PW)
    r = await op.form(f"/rbac/users/{carol_id}/password", {"password": NEW_PW, "password2": NEW_PW})
    assert r.headers["location"] == f"/rbac/users/{carol_id}"
    assert "已重置 carol 的密码，并结束其 1 个会话" in await follow(op, r)
    as_carol_again(world, token)
    assert await me(world) == 401
    assert (await Operator(world.client).login("carol", PW)).status_code == 400
    await world.as_user("carol", NEW_PW)
    [audit] = await world.audit("users")
    assert audit.action == "password_reset" and json.loads(audit.after_json) == {"user": "carol", "sessions_ended": 1}
    assert NEW_PW not in audit.after_json


async def test_disable_ends_sessions_and_enable_lets_them_back(world):
    carol_id, token = await carol_logged_in(world)
    op = await world.as_user("admin", ADMIN_PW)
    text = await follow(op, await op.form(f"/rbac/users/{carol_id}/status", {"status": "disabled"}))
    assert "已停用 carol，并结束其 1 个会话" in text and "badge off" in text
    assert (await _user_row(world, "carol")).user_status == "1"
    as_carol_again(world, token)
    assert await me(world) == 401
    assert (await Operator(world.client).login("carol", PW)).status_code == 400
    op = await world.as_user("admin", ADMIN_PW)
    text = await follow(op, await op.form(f"/rbac/users/{carol_id}/status", {"status": "active"}))
    assert "已启用 carol" in text and (await _user_row(world, "carol")).user_status == "0"
    await world.as_user("carol", PW)
    assert [a.action for a in await world.audit("users")] == ["user_disable", "user_enable"]
    # nobody disables themselves (and locks the door behind them)
    op = await world.as_user("admin", ADMIN_PW)
    admin_id = await world.user_id("admin")
    text = await follow(op, await op.form(f"/rbac/users/{admin_id}/status", {"status": "disabled"}))
    assert "不能停用自己的账号" in text and (await _user_row(world, "admin")).user_status == "0"
    assert (await op.form(f"/rbac/users/{admin_id}/status", {"status": "gone"})).status_code == 400


async def test_file_a_user_under_an_organisation(world):
    carol_id = await world.user("carol", PW, "ops.viewer")
    engine = world.engine()
    async with engine.begin() as conn:
        await conn.execute(insert(rbac.table("organization")).values(id="acme", orgname="Acme 公司"))
    await engine.dispose()
    op = await world.as_user("admin", ADMIN_PW)
    page = (await op.client.get(f"/rbac/users/{carol_id}")).text
    assert '<option value="acme">Acme 公司 (acme)</option>' in page
    text = await follow(op, await op.form(f"/rbac/users/{carol_id}/org", {"orgid": "acme"}))
    assert "已将 carol 归入组织 acme" in text
    assert (await _user_row(world, "carol")).orgid == "acme"
    assert (await op.form(f"/rbac/users/{carol_id}/org", {"orgid": "nowhere"})).status_code == 404
    [audit] = await world.audit("users")
    assert json.loads(audit.after_json) == {"user": "carol", "org": "acme", "was": "pipeline-app"}
    users = (await op.client.get("/rbac/users", params={"q": "carol"})).text
    assert "Acme 公司" in users


async def test_roles_from_the_user_page_and_back_to_it(world):
    carol_id = await world.user("carol", PW, "ops.viewer")
    op = await world.as_user("admin", ADMIN_PW)
    admin_role, _ = await world.ids("pipeline.admin")
    r = await op.form("/rbac/users", {"user_id": carol_id, "role_id": admin_role, "op": "add",
                                      "back": f"/rbac/users/{carol_id}"})
    assert r.headers["location"] == f"/rbac/users/{carol_id}"
    assert "已将角色 pipeline.admin 授予 carol" in await follow(op, r)
    op.client.cookies.set("lang", "en")
    r = await op.form("/rbac/users?q=car", {"user_id": carol_id, "role_id": admin_role, "op": "remove"})
    assert r.headers["location"] == "/rbac/users?q=car"
    assert "Role pipeline.admin taken from carol" in await follow(op, r)
    assert [a.action for a in await world.audit("userrole")] == ["role_add", "role_remove"]


async def test_the_pages_show_only_the_forms_their_reader_may_use(world):
    await world.grant("test.looker", "/rbac/users", "/rbac/users/{id}")
    lou_id = await world.user("lou", PW, "test.looker")
    op = await world.as_user("lou", PW)
    users = (await op.client.get("/rbac/users")).text
    assert 'action="/rbac/users/new"' not in users and 'method="post" action="/rbac/users' not in users
    assert f'href="/rbac/users/{lou_id}"' in users
    page = (await op.client.get(f"/rbac/users/{lou_id}")).text
    for action in ("/password", "/status", "/org"):
        assert f'action="/rbac/users/{lou_id}{action}"' not in page
    assert (await op.client.get("/rbac/users/00000000000000000000000000000000")).status_code == 404
