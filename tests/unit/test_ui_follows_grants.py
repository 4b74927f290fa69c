"""The UI follows permissions: a viewer (the read-only preset of every module) sees no button,
link or bulk action that writes, on every list and record page of the manifest and on the home
page; an operator (the operator preset) sees them. The demo catalog gives every page a row."""
from __future__ import annotations

import re

from rbac_world import ADMIN_PW, world, world_settings  # noqa: F401 - fixtures

from app.auth.grants import app_path_methods
from app.cli.demo import fill_demo
from app.core.context import AppContext
from app.web.rbac_admin.presets import preset_paths

PW = {"vic": "viewer-Passw0rd-1", "otto": "operat0r-Passw0rd-1"}


async def _setup(world) -> list:
    """Demo rows, a viewer `vic` and an operator `otto`; the tables with a list page."""
    ctx = world.app.state.ctx
    own = AppContext(ctx.settings, ctx.catalog)  # the app's pools live on its client's event loop
    await own.start()
    try:
        await fill_demo(own, days=3)
    finally:
        await own.stop()
    served = app_path_methods(world.app)
    modules = [m["name"] for m in ctx.catalog.modules]
    for user, role, preset in (("vic", "ops.viewer", "viewer"), ("otto", "ops.operator", "operator")):
        await world.user(user, PW[user], role)
        await world.grant(role, *[p for m in modules for p in preset_paths(preset, m, served)])
    lists = {r["table"] for r in ctx.catalog.routes if r["kind"] == "list"}
    return [ctx.catalog.tables[name] for name in sorted(lists)]


def _write_controls(html: str, base: str) -> list[str]:
    """The controls of `html` that would write to the table at `base`."""
    b = re.escape(base)
    found = re.findall(rf'href="{b}/(?:new|import)[^"]*"|id="bulk"|value="delete"'
                       rf'|href="{b}/[^"/]+/(?:edit|delete)"|action="{b}/[^"]+"', html)
    return found


async def _first_id(world, tv) -> str | None:
    await world.as_user("admin", ADMIN_PW)
    r = await world.client.get(f"/api{tv.base}?rows=1")
    rows = r.json().get("rows") if r.status_code == 200 else None
    return str(rows[0][tv.pk]) if rows else None


async def test_a_viewer_sees_no_write_buttons_and_an_operator_does(world):
    tables = await _setup(world)
    ids = {tv.name: await _first_id(world, tv) for tv in tables}
    assert sum(1 for v in ids.values() if v) >= 6, ids  # the demo gave most tables a row
    seen = {"vic": 0, "otto": 0}
    for user in ("vic", "otto"):
        await world.as_user(user, PW[user])
        home = await world.client.get("/")
        assert home.status_code == 200 and "/pipeline_core/pipelines" in home.text
        assert not re.search(r'href="[^"]+/(new|import)"', home.text)
        for tv in tables:
            page = await world.client.get(tv.base)
            assert page.status_code == 200, (user, tv.base, page.status_code)
            controls = _write_controls(page.text, tv.base)
            assert "export.xlsx" in page.text, tv.base  # reading and exporting are a viewer's
            if user == "vic":
                assert controls == [], (tv.base, controls)
            elif not tv.view["noedit"]:
                assert f'href="{tv.base}/new"' in page.text and 'id="bulk"' in page.text, tv.base
                assert 'value="delete"' in page.text and f'href="{tv.base}/import"' in page.text, tv.base
            if ids[tv.name] is None:
                continue
            record = await world.client.get(f"{tv.base}/{ids[tv.name]}")
            assert record.status_code == 200, (user, tv.base, record.status_code)
            controls = _write_controls(record.text, tv.base)
            if user == "vic":
                assert controls == [], (tv.base, controls)
            elif not tv.view["noedit"]:
                assert f'{tv.base}/{ids[tv.name]}/edit"' in record.text, tv.base
                assert f'{tv.base}/{ids[tv.name]}/delete"' in record.text, tv.base
            seen[user] += 1
    assert seen["vic"] == seen["otto"] >= 6, seen


async def test_module_actions_follow_their_own_grants(world):
    await _setup(world)
    pid = await _first_id(world, world.app.state.ctx.catalog.tables["pipelines"])
    did = await _first_id(world, world.app.state.ctx.catalog.tables["distributors"])
    await world.as_user("otto", PW["otto"])
    pipeline = (await world.client.get(f"/pipeline_core/pipelines/{pid}")).text
    assert f"/pipeline_core/pipelines/{pid}/publish" in pipeline
    dist = (await world.client.get(f"/pipeline_dist/distributors/{did}")).text
    assert f"/pipeline_dist/distributors/{did}/rotate_key" in dist or f"{did}/generate_key" in dist
    await world.as_user("vic", PW["vic"])
    pipeline = (await world.client.get(f"/pipeline_core/pipelines/{pid}")).text
    assert "/publish" not in pipeline and "/rollback" not in pipeline
    dist = (await world.client.get(f"/pipeline_dist/distributors/{did}")).text
    assert not re.search(r'action="[^"]+/(generate|rotate|revoke)_key"', dist)


async def test_bulk_delete_needs_the_delete_grant(world):
    await _setup(world)
    await world.grant("ops.bulker", "/pipeline_core/pipelines", "/pipeline_core/pipelines/bulk")
    await world.user("bob", "bulker-Passw0rd-1", "ops.bulker")
    pid = await _first_id(world, world.app.state.ctx.catalog.tables["pipelines"])
    op = await world.as_user("bob", "bulker-Passw0rd-1")
    page = await world.client.get("/pipeline_core/pipelines")
    assert 'id="bulk"' in page.text and 'value="delete"' not in page.text  # set-status stays offered
    r = await op.form("/pipeline_core/pipelines/bulk", {"op": "delete", "ids": pid})
    assert r.status_code == 403 and "/pipeline_core/pipelines/{id}/delete" in r.text
