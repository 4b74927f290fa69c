"""Every table the app uses comes from build/: the RBAC tables sit in the manifest apart from the
app's, the catalog loads them once, and serving requests compiles no spec."""
from __future__ import annotations

import json

from helpers import ADMIN_PASSWORD, ROOT

from app.auth import rbac
from app.auth.sessions import sessions_table, throttle_table
from app.core.catalog import load_catalog
from app.core.db import make_engine
from generators import loader, schema
from generators.raw_spec import spec_to_raw
from modules.pipeline_dist import keys
from modules.pipeline_dist.key_format import generate_key


def test_manifest_holds_the_rbac_tables_apart():
    manifest = json.loads((ROOT / "build" / "manifest.json").read_text(encoding="utf-8"))
    specs = loader.load_specs([ROOT / "models" / "rbac"])
    assert sorted(manifest["rbac_tables"]) == sorted(s.name for s in specs)
    assert not set(manifest["rbac_tables"]) & set(manifest["tables"])
    for spec in specs:
        assert manifest["rbac_tables"][spec.name]["spec"] == json.loads(json.dumps(spec_to_raw(spec)))


def test_runtime_tables_are_the_loaded_catalogs():
    catalog = load_catalog(ROOT / "build")
    assert rbac.table("users") is catalog.rbac_table("users")
    assert sessions_table() is catalog.tables["sessions"].table
    assert throttle_table() is catalog.tables["login_throttle"].table
    assert keys._distributors() is catalog.tables["distributors"].table
    assert "users" not in catalog.metadata.tables  # another database: not in the app's MetaData


async def test_serving_compiles_no_spec(admin, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a spec was compiled while serving")

    for module, name in ((loader, "load_spec"), (loader, "load_specs"), (schema, "build_metadata"),
                         (schema, "add_table")):
        monkeypatch.setattr(module, name, refuse)
    rbac.invalidate()
    assert (await admin.client.get("/pipeline_core/pipelines")).status_code == 200
    assert (await admin.api("GET", "/api/pipeline_core/pipelines")).status_code == 200
    assert (await admin.form("/logout", {})).status_code == 303
    assert (await admin.login("admin", "wrong-password")).status_code != 303
    assert (await admin.login("admin", ADMIN_PASSWORD)).status_code == 303
    engine = make_engine(admin.ctx.settings.database)
    try:
        async with engine.connect() as conn:
            assert await keys.verify_key(conn, admin.ctx.settings, generate_key()) is None
    finally:
        await engine.dispose()
